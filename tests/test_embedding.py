"""Code tests on the real embedder: whole-text windows, the cache, the identity that keys it."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from newsclf.embedding import Embedder, EmbedderConfig

pytestmark = pytest.mark.slow

HEAD = " ".join(
    f"Le paragraphe {i} rapporte les entretiens entre les polices vietnamienne et laotienne sur la frontière."
    for i in range(40)
)


def _with_mode(embedder: Embedder, mode: str) -> Embedder:
    other = Embedder(embedder.config.model_copy(update={"long_text": mode}), show_progress=False)
    other._model, other._model_path = embedder.model, embedder._model_path  # share the loaded weights
    other._export = embedder._export  # and the backend's export, which the identity names
    return other


@pytest.fixture(scope="module")
def truncating(embedder: Embedder) -> Embedder:
    return _with_mode(embedder, "truncate")


@pytest.fixture(scope="module")
def windowed(embedder: Embedder) -> Embedder:
    return _with_mode(embedder, "windows")


def test_windows_read_past_the_first_512_tokens(windowed: Embedder, truncating: Embedder):
    assert windowed.count_tokens(HEAD) > 600
    a = HEAD + " Les deux parties ont signé un accord contre le trafic de drogue."
    b = HEAD + " Les deux équipes de football ont fait match nul au stade national."
    cut_a, cut_b = truncating.encode([a, b])
    assert float(cut_a @ cut_b) > 0.999  # the endings lie beyond what truncation reads
    win_a, win_b = windowed.encode([a, b])
    assert float(win_a @ win_b) < float(cut_a @ cut_b)


def test_vectors_are_unit_length(windowed: Embedder):
    vectors = windowed.encode(["Hà Nội (TTXVN) – Bộ Công an Việt Nam và Lào ký kế hoạch hợp tác.", HEAD])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_second_encode_comes_from_the_cache(embedder: Embedder):
    document = f"Article jamais vu {uuid.uuid4()} : coopération policière entre le Vietnam et le Japon."
    first = embedder.encode([document])
    assert embedder.last_cache_stats == (0, 1)
    second = embedder.encode([document])
    assert embedder.last_cache_stats == (1, 0)
    assert np.array_equal(first, second)


def test_identity_names_what_changes_the_vectors(windowed: Embedder, truncating: Embedder):
    assert "long_text=windows" in windowed.identity
    assert "long_text=truncate" in truncating.identity
    assert "prefix='query: '" in truncating.identity


def test_an_unloadable_embedder_says_what_to_do(tmp_path):
    from newsclf.embedding import EmbedderUnavailable

    broken = Embedder(EmbedderConfig(model=str(tmp_path / "no-such-model")), show_progress=False)
    with pytest.raises(EmbedderUnavailable, match="bundled"):
        _ = broken.model
