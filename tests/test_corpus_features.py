"""Features shared by the fits of one training: a fold's TF-IDF from the corpus counts equals fitting on its texts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from newsclf.heads import SentenceTopics
from newsclf.lexical import lexical_vectorizer
from newsclf.predictor import Predictor, features
from tests.conftest import SMALL_MODEL_ARTICLES, covering_sample
from training.config import load_config
from training.corpus_features import CorpusFeatures, NgramCounts
from training.fit_pool import FitPool

TEXTS = [
    "Le Vietnam et la France renforcent leur coopération dans la lutte contre le terrorisme.",
    "Les deux ministères de la Sécurité publique ont signé un accord sur la cybercriminalité.",
    "Vietnam and Japan agreed to step up cooperation against drug trafficking and cybercrime.",
    "Hai bên nhất trí tăng cường hợp tác phòng, chống tội phạm ma túy và mua bán người.",
    "La police vietnamienne et la police cambodgienne échangent des informations sur la drogue.",
    "The defence ministers discussed maritime security, peacekeeping and training of officers.",
    "Bộ Công an Việt Nam và Bộ Nội vụ Lào ký kết biên bản ghi nhớ về an ninh mạng.",
    "Hanoi et Vientiane coopèrent contre la traite des êtres humains le long de la frontière.",
    "Both sides welcomed the growth of trade and investment between Vietnam and the EU.",
    "Le Vietnam et l'Inde ont tenu leur dialogue sur la sécurité; terrorisme et cybercriminalité.",
    "Vietnam cảm ơn Nhật Bản đã hỗ trợ đào tạo cán bộ cảnh sát về điều tra tội phạm công nghệ cao.",
    "The two countries will share intelligence on transnational crime, including money laundering.",
] * 2 + ["un texte seul", "a lonely text", "một câu riêng lẻ"]


@pytest.mark.parametrize("template", [lexical_vectorizer(), lexical_vectorizer(max_char_features=300),
                                      SentenceTopics.vectorizer()], ids=["articles", "few-char-features", "sentences"])
@pytest.mark.parametrize("rows", [np.arange(0, 27, 2), np.array([25, 3, 14, 0, 7, 19, 26, 11, 8])],
                         ids=["every-other", "shuffled"])
def test_a_fold_fitted_from_corpus_counts_is_the_fold_fitted_on_its_texts(template, rows):
    counts = NgramCounts(template, TEXTS)
    fitted, X = counts.fit(rows)
    reference = clone(template)
    X_ref = reference.fit_transform([TEXTS[r] for r in rows])
    for (name, ours), (_, theirs) in zip(fitted.transformer_list, reference.transformer_list, strict=True):
        assert ours.vocabulary_ == theirs.vocabulary_, name  # max_features ties broken the same way
        np.testing.assert_array_equal(ours.idf_, theirs.idf_)
    np.testing.assert_allclose(X.toarray(), X_ref.toarray(), atol=1e-12)
    unseen = ["La coopération contre la cybercriminalité progresse.", "Hợp tác an ninh mạng", "no n-gram known ÷"]
    np.testing.assert_allclose(fitted.transform(unseen).toarray(), reference.transform(unseen).toarray(), atol=1e-12)


def test_the_template_is_left_unfitted_and_folds_do_not_share_state():
    template = lexical_vectorizer()
    counts = NgramCounts(template, TEXTS)
    first, _ = counts.fit(np.arange(10))
    second, _ = counts.fit(np.arange(10, 27))
    assert not hasattr(template.transformer_list[0][1], "vocabulary_")
    assert first.transformer_list[0][1].vocabulary_ != second.transformer_list[0][1].vocabulary_


@pytest.mark.slow
def test_the_fitted_heads_do_not_depend_on_the_number_of_worker_processes(corpus_articles, embedder):
    config = load_config(overrides={"cv": {"inner_folds": 2}})
    articles = covering_sample(corpus_articles, SMALL_MODEL_ARTICLES)
    corpus = CorpusFeatures(articles, embedder, config)
    training_sets = [articles[: len(articles) * 3 // 4], articles[len(articles) // 4:]]
    with FitPool(corpus, config, workers=1) as one, FitPool(corpus, config, workers=2) as two:
        by_one, by_two = one.fit(training_sets), two.fit(training_sets)
    documents = corpus.documents
    for a, b in zip(by_one, by_two, strict=True):
        F = features(a, documents, embedder)
        np.testing.assert_array_equal(a.sector.predict_proba(F), b.sector.predict_proba(F))
        np.testing.assert_array_equal(a.topics.thresholds_, b.topics.thresholds_)
        np.testing.assert_array_equal(a.topics.predict_proba(F), b.topics.predict_proba(F))
        assert Predictor(embedder, a).predict(articles) == Predictor(embedder, b).predict(articles)


def test_vectors_the_training_already_has_are_not_embedded_again(corpus_articles):
    class NoEmbedder:  # an unusable embedding cache would make a second encode embed the corpus again
        def encode(self, documents):
            raise AssertionError("the corpus was embedded twice")

    articles = corpus_articles[:20]
    vectors = np.ones((20, 384), dtype=np.float32)
    corpus = CorpusFeatures(articles, NoEmbedder(), load_config(), embeddings=vectors)
    assert corpus.embeddings is vectors
    with pytest.raises(ValueError, match="19 vectors for 20 articles"):
        CorpusFeatures(articles, NoEmbedder(), load_config(), embeddings=vectors[:19])
