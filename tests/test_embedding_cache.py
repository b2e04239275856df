"""The bounded embedding cache: size limit with LRU eviction, leftovers swept, failures turn it off quietly."""

from __future__ import annotations

import logging

import numpy as np

from newsclf.embedding_cache import EmbeddingCache


def _vector(i: int) -> np.ndarray:
    return np.full(384, i, dtype=np.float32)


def test_the_cache_stays_under_its_limit_and_evicts_the_least_recently_used(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=1024**2)
    cache.put("id", "keep", _vector(-1))
    for i in range(3000):  # about 4.6 MB of vectors into a 1 MB cache
        cache.put("id", f"k{i}", _vector(i))
        if i % 100 == 0:
            assert cache.get("id", "keep") is not None  # used again and again: never the one evicted
    assert cache.volume() <= 1.2 * 1024**2
    assert cache.get("id", "k0") is None
    assert np.array_equal(cache.get("id", "k2999"), _vector(2999))
    assert np.array_equal(cache.get("id", "keep"), _vector(-1))


def test_the_old_file_per_vector_layout_is_imported_and_leftovers_removed(tmp_path):
    old = tmp_path / "0123456789abcdef0123"
    (old / "ab").mkdir(parents=True)
    (old / "identity.txt").write_text("an-identity")
    np.save(old / "ab" / "abcd.npy", _vector(7))
    (old / "ab" / "tmpx1.tmp").write_bytes(b"")  # what a killed writer left
    cache = EmbeddingCache(tmp_path, max_bytes=1024**2)
    assert np.array_equal(cache.get("an-identity", "abcd"), _vector(7))
    assert not old.exists() and not list(tmp_path.glob("**/*.tmp"))


def test_a_cache_that_cannot_work_is_off_with_one_warning(tmp_path, caplog):
    blocker = tmp_path / "embeddings"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(blocker, max_bytes=1024**2)
        cache.put("id", "k", _vector(1))
        assert cache.get("id", "k") is None
    assert cache.disabled and len(caplog.records) == 1
