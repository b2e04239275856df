"""The embedding cache: vectors keyed by (embedder identity, document sha256), bounded, and never fatal.

One ``diskcache`` store (SQLite, safe across threads and processes) per cache folder, with a size limit and
least-recently-used eviction: a service that sees new texts all day keeps its most used vectors within the limit
instead of one file per text forever. Any failure of the store (unwritable folder, full disk, a corrupt
database, no file descriptors left) turns the cache off for the process with ONE warning line: the embedder then
computes every vector, which is slower but correct, and a request never fails because of the cache.

Leftovers are swept when a store is opened: the per-file ``.npy`` layout of earlier versions (imported into the
store first, so a retrain does not embed the corpus again) and the ``*.tmp`` files a killed writer left.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SIZE_ENV = "NEWSCLF_EMBEDDING_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 1024**3
STORE = "store"  # the diskcache folder inside <cache_dir>/embeddings
_LOCK = threading.Lock()
_CACHES: dict[Path, EmbeddingCache] = {}
_max_bytes: int | None = None


def set_size_limit(max_bytes: int) -> None:
    """The size limit of stores opened from now on, and of those already open (the service's setting)."""
    global _max_bytes
    _max_bytes = int(max_bytes)
    with _LOCK:
        for cache in _CACHES.values():
            cache.resize(_max_bytes)


def size_limit() -> int:
    if _max_bytes is not None:
        return _max_bytes
    return int(os.environ.get(SIZE_ENV) or DEFAULT_MAX_BYTES)


def cache_for(root: Path) -> EmbeddingCache:
    """The process's one cache for ``root`` (``<cache_dir>/embeddings``), opened on first use."""
    root = Path(root)
    with _LOCK:
        cache = _CACHES.get(root)
        if cache is None:
            cache = _CACHES[root] = EmbeddingCache(root, size_limit())
        return cache


def document_key(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors by (identity, document key). ``get`` returns None and ``put`` does nothing once the cache is off."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0
        self.disabled: str | None = None  # why the cache is off
        self._store = None
        try:
            import diskcache

            root.mkdir(parents=True, exist_ok=True)
            self._store = diskcache.Cache(str(root / STORE), size_limit=max_bytes,
                                          eviction_policy="least-recently-used", statistics=False)
            self._sweep()
        except Exception as exc:  # noqa: BLE001 - any failure means "no cache", never a failed request
            self._disable(exc)

    def _disable(self, exc: BaseException) -> None:
        if self.disabled is None:
            self.disabled = f"{type(exc).__name__}: {exc}"
            log.warning("embedding cache under %s turned off, every vector will be computed: %s", self.root,
                        self.disabled)
        self._store = None

    def resize(self, max_bytes: int) -> None:
        if self._store is not None:
            try:
                self._store.reset("size_limit", max_bytes)
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)

    @staticmethod
    def _key(identity: str, key: str) -> str:
        return f"{hashlib.sha256(identity.encode()).hexdigest()[:20]}:{key}"

    def get(self, identity: str, key: str) -> np.ndarray | None:
        if self._store is None:
            return None
        try:
            raw = self._store.get(self._key(identity, key))
        except Exception as exc:  # noqa: BLE001
            self._disable(exc)
            return None
        return None if raw is None else np.frombuffer(raw, dtype=np.float32).copy()

    def put(self, identity: str, key: str, vector: np.ndarray) -> None:
        if self._store is None:
            return
        try:
            self._store.set(self._key(identity, key), np.asarray(vector, dtype=np.float32).tobytes())
        except Exception as exc:  # noqa: BLE001
            self._disable(exc)

    def volume(self) -> int:
        """Bytes the store holds (0 when off)."""
        try:
            return int(self._store.volume()) if self._store is not None else 0
        except Exception:  # noqa: BLE001
            return 0

    def _sweep(self) -> None:
        """Import then remove the old one-file-per-vector folders; remove the temporary files of killed writers."""
        for folder in self.root.iterdir():
            if folder.name == STORE or not folder.is_dir():
                continue
            identity_file = folder / "identity.txt"
            if identity_file.is_file():
                identity = identity_file.read_text()
                for path in folder.glob("*/*.npy"):
                    try:
                        self.put(identity, path.stem, np.load(path))
                    except (ValueError, OSError):
                        pass  # a truncated file: nothing to keep
            shutil.rmtree(folder, ignore_errors=True)
        for leftover in self.root.glob("**/*.tmp"):
            leftover.unlink(missing_ok=True)
