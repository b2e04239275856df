"""Embedding backends: length-sorted batches, the OpenVINO tokenizer, identities that never mix, the fidelity gate."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from newsclf.backends import PAD_MULTIPLE, FastTokenizer, encode_length_sorted, length_sorted_batches
from newsclf.embedding import Embedder, bundled_e5_dir
from newsclf.model_format import ModelIntegrityError, load_model
from newsclf.predictor import LabelScores, Prediction
from training.calibration import TARGET, calibration_lines
from training.config import load_config
from training.evaluation import Evaluation
from training.fidelity import cosine_by_language, judge, run_gate

from .conftest import covering_sample

LONG = " ".join(f"Câu số {i}: công an hai nước trao đổi thông tin về tội phạm ma túy." for i in range(90))


# --- code tests: no model needed ----------------------------------------------------------------------------
def test_length_sorted_batches_cover_every_document_once_longest_first():
    lengths = [5, 40, 7, 40, 1, 33, 12]
    batches = length_sorted_batches(lengths, 3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert [len(b) for b in batches] == [3, 3, 1]


class _RecordingModel:
    """Embeds a text as [its length, 0, ...]; records the batches it was given."""

    max_seq_length = 512

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.tokenizer = lambda texts, **_: {"input_ids": [t.split() for t in texts]}

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts, batch_size, **_):
        self.batches.append(list(texts))
        return np.array([[len(t.split()), 0, 0] for t in texts], dtype=np.float32)


def test_length_sorted_encoding_restores_the_callers_order():
    texts = ["a b c", "a", "a b c d e f", "a b", "a b c d"]
    model = _RecordingModel()
    out = encode_length_sorted(model, texts, batch_size=2, normalize=False)
    assert out[:, 0].tolist() == [3, 1, 6, 2, 4]  # row i is text i
    assert model.batches == [["a b c d e f", "a b c d"], ["a b c", "a b"], ["a"]]  # similar lengths together


def test_judge_fails_a_backend_that_changes_labels_or_vectors(corpus_articles):
    gold = corpus_articles[:2]

    def evaluation(sectors: list[str], metric: float) -> Evaluation:
        def prediction(sector: str) -> Prediction:
            return Prediction(LabelScores(sector, 0.9, {}), [], {}, LabelScores("asia", 0.9, {}), [], "fr")
        metrics = {"sector.macro_f1": metric, "topics.micro_f1": metric, "region.macro_f1": metric}
        return Evaluation("cv", gold, [prediction(s) for s in sectors], metrics)

    reference = evaluation(["security", "economy"], 0.80)
    same = judge("same", {"fr": (0.999, 0.99, 2)}, reference, evaluation(["security", "economy"], 0.80))
    assert same.passed, same.failures
    worse = judge("worse", {"fr": (0.98, 0.95, 2)}, reference, evaluation(["security", "defense"], 0.79))
    assert not worse.passed
    failures = " ".join(worse.failures)
    for reason in ("mean cosine", "min cosine", "sector labels agree on 50.00%", "composite differs by -0.0100"):
        assert reason in failures


def test_cosine_is_reported_per_language():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 8))
    b = a.copy()
    b[3] = -b[3]
    report = cosine_by_language(a, b, ["fr", "fr", "vi", "vi"])
    assert report["fr"] == pytest.approx((1.0, 1.0, 2))
    assert report["vi"][1] == pytest.approx(-1.0)


def test_calibration_documents_match_the_corpus(corpus_articles):
    """Stale calibration data would quantise on text the model no longer reads: regenerate it."""
    assert TARGET.read_text(encoding="utf-8") == calibration_lines(corpus_articles), \
        "newsclf/data/calibration.jsonl is stale: run `python -m training.calibration`"


# --- with the real embedder ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_openvino_tokenizer_gives_the_ids_sentence_transformers_uses(embedder: Embedder):
    _ = embedder.model  # builds the bundled folder if needed
    folder = bundled_e5_dir(embedder.config.cache_dir)
    reference = AutoTokenizer.from_pretrained(str(folder))
    ours = FastTokenizer(folder, 512)
    texts = ["query: " + LONG, "query: Hà Nội – Việt Nam", "query: Coopération\tfranco-vietnamienne  "]
    expected = reference(texts, truncation=True, max_length=512, padding=True, return_tensors="np")
    ids, mask = ours.batch(texts)
    assert ids.shape[1] == 512
    np.testing.assert_array_equal(ids, expected["input_ids"])
    np.testing.assert_array_equal(mask, expected["attention_mask"])
    # Short texts: padded to a multiple of PAD_MULTIPLE (few shapes for OpenVINO), the padding masked out.
    short = reference(texts[1:], padding=True, return_tensors="np")
    width = short["input_ids"].shape[1]
    ids, mask = ours.batch(texts[1:])
    assert width < PAD_MULTIPLE == ids.shape[1]
    np.testing.assert_array_equal(ids[:, :width], short["input_ids"])
    assert (ids[:, width:] == ours.pad_id).all() and not mask[:, width:].any()
    ids, mask = ours.batch(texts[1:], pad_multiple=1)
    np.testing.assert_array_equal(ids, short["input_ids"])
    np.testing.assert_array_equal(mask, short["attention_mask"])


@pytest.mark.slow
def test_identity_names_backend_and_precision(embedder: Embedder):
    torch_embedder = Embedder(embedder.config.model_copy(update={"backend": "torch"}), show_progress=False)
    assert f"backend={embedder.config.backend}" in embedder.identity
    assert "backend=torch|precision=weights=fp32,compute=f32" in torch_embedder.identity
    assert embedder.identity != torch_embedder.identity  # so the cache never mixes their vectors


@pytest.mark.slow
def test_a_model_refuses_an_embedder_of_another_backend(small_model_dir, embedder: Embedder):
    other = "torch" if embedder.config.backend != "torch" else "openvino-int8"
    wrong = Embedder(embedder.config.model_copy(update={"backend": other}), show_progress=False)
    with pytest.raises(ModelIntegrityError, match=f"trained with embedding backend '{embedder.config.backend}'"):
        load_model(small_model_dir, embedder=wrong)


@pytest.mark.slow
def test_the_default_backend_passes_the_gate_on_a_sample(embedder: Embedder, corpus_articles):
    """The gate on a sample: cosines per language, and labels with 2-fold CV on articles covering every label."""
    config = load_config(overrides={"cv": {"folds": 2, "inner_folds": 2}})
    sample = covering_sample(corpus_articles, 120, per_label=8)
    [result] = run_gate(config, [embedder.config.backend], articles=sample, written=sample, progress=print)
    assert result.cosine.keys() == {"en", "fr", "vi"}
    assert sum(n for _m, _lo, n in result.cosine.values()) == len(sample)
    cosine_failures = [f for f in result.failures if "cosine" in f]
    assert not cosine_failures, result.line()
    # ~120 articles: one changed label is ~0.8%, so the sample is held to 95%, the whole corpus to 99%.
    assert result.sector_agreement >= 0.95 and result.region_agreement >= 0.95, result.line()
    assert abs(result.composite_delta) <= 0.02, result.line()
