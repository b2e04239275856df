"""Fitting the heads: the same code for every fold, the real-text check and the shipped model.

Everything chosen here (view weights, temperatures, topic thresholds, sentence weights, partner shares) is chosen
on the training articles only, by inner cross-validation, so that an outer fold never informs its own model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupKFold

from newsclf.embedding import Embedder
from newsclf.gazetteer import rank_partners
from newsclf.heads import Features, RegionHead, SentenceTopics, TopicsHead, ViewBlend
from newsclf.predictor import NO_PARTNERS, ArticleSentences, Heads, Predictor, gazetteer_priors
from newsclf.taxonomy import taxonomy
from training.config import TrainConfig
from training.corpus_features import CorpusFeatures
from training.records import Article

EVIDENCE_OVERLAP = 0.5  # a sentence states a topic when half of it (or of the evidence span) is evidence


def sentence_labels(article: Article, sentences: ArticleSentences, topics: Sequence[str]) -> np.ndarray:
    """sentences x topics: 1 where the sentence overlaps the article's evidence for that topic."""
    Y = np.zeros((len(sentences.spans), len(topics)), dtype=int)
    for k, span in enumerate(sentences.spans):
        for t, topic in enumerate(topics):
            for start, end in article.evidence.get(topic, ()):
                overlap = min(span.end, end) - max(span.start, start)
                if overlap > EVIDENCE_OVERLAP * min(span.end - span.start, end - start):
                    Y[k, t] = 1
    return Y


def fit_sentence_model(articles: Sequence[Article], sentences: Sequence[ArticleSentences],
                       config: TrainConfig, vectorized=None) -> tuple[SentenceTopics, np.ndarray]:
    """The sentence-level topic model on every sentence of ``articles``, and its out-of-fold best-sentence scores
    per article (inner folds keep a story's versions together; the vectorizer is fitted once on all the
    sentences, an unsupervised step whose leak into the inner folds only touches the choice of weights).
    ``vectorized``: that vectorizer and matrix already computed (``CorpusFeatures``)."""
    topics = taxonomy().topics
    texts = [t for s in sentences for t in s.texts]
    Y = np.vstack([sentence_labels(a, s, topics) for a, s in zip(articles, sentences, strict=True)]
                  or [np.zeros((0, len(topics)), dtype=int)])
    owner = np.repeat(np.arange(len(articles)), [len(s.texts) for s in sentences])
    vectorizer, X = vectorized if vectorized is not None else SentenceTopics.vectorize(texts)
    groups = [a.group for a in articles]
    oof = np.zeros((len(articles), len(topics)))

    def make() -> SentenceTopics:
        return SentenceTopics(config.topics.sentence_C, config.topics.class_weight)

    for train, test in GroupKFold(n_splits=min(config.cv.inner_folds, len(set(groups)))).split(
            np.zeros(len(articles)), groups=groups):
        rows = np.isin(owner, train)
        model = make().fit([], Y[rows], vectorized=(vectorizer, X[rows]))
        held = np.isin(owner, test)
        oof[test] = model.best([sentences[i].texts for i in test], X[held])[0]
    return make().fit(texts, Y, vectorized=(vectorizer, X)), oof


def fit_heads(F: Features, articles: Sequence[Article], documents: Sequence[str], config: TrainConfig,
              sentences: Sequence[ArticleSentences] | None = None, *,
              ranked: Sequence[list[tuple[str, float]]] | None = None, sentence_vectorized=None) -> Heads:
    """Fit every head on features ``F`` of ``articles`` (whose prepared texts are ``documents``); with
    ``sentences``, also the sentence-level topic model from the articles' evidence. ``ranked`` (each document's
    ``rank_partners(document, min_share=0.0)``) and ``sentence_vectorized`` (see ``fit_sentence_model``): when
    already computed.

    Single-threaded on purpose: liblinear draws from one random generator shared by the threads of a process, so
    threaded per-topic fits came out different from one run to the next; parallelism is across fits, in worker
    processes (``training.fit_pool``)."""
    tax = taxonomy()
    views = config.views
    cv, calibrate = config.cv, config.calibrate
    Y = np.array([[t in a.topics for t in tax.topics] for a in articles], dtype=int)
    if ranked is None:
        ranked = [rank_partners(d, min_share=0.0) for d in documents]
    foreign = [i for i, a in enumerate(articles) if a.sector != "none"]
    share, share_scores = choose_min_share(
        [ranked[i] for i in foreign], [articles[i].partners for i in foreign], config.partners.min_share_grid
    )
    multilateral = [i for i in foreign if articles[i].region == "multilateral"]
    share_multi, share_multi_scores = choose_min_share(
        [ranked[i] for i in multilateral], [articles[i].partners for i in multilateral],
        (*config.partners.min_share_grid, NO_PARTNERS),
    ) if multilateral else (None, {})
    priors = gazetteer_priors(documents, ranked)
    r_cfg, t_cfg, s_cfg = config.region, config.topics, config.sector
    region = RegionHead(views, r_cfg.C, r_cfg.C_lexical, r_cfg.class_weight, r_cfg.partner_weight_grid, calibrate,
                        cv.inner_folds, cv.seed).fit(F, [a.region for a in articles], priors)
    sentence_model = s_oof = None
    if sentences is not None and t_cfg.sentence_model:
        sentence_model, s_oof = fit_sentence_model(articles, sentences, config, sentence_vectorized)
    topics = TopicsHead(views, t_cfg.C, t_cfg.C_lexical, t_cfg.class_weight, t_cfg.threshold_grid,
                        calibrate=calibrate, inner_folds=cv.inner_folds, seed=cv.seed
                        ).fit(F, Y, s_oof)
    sector = ViewBlend(views, s_cfg.C, s_cfg.C_lexical, s_cfg.class_weight, calibrate=calibrate,
                       inner_folds=cv.inner_folds, seed=cv.seed).fit(F, [a.sector for a in articles])
    return Heads(
        sector=sector,
        topics=topics,
        region=region,
        partner_min_share=share,
        topic_labels=tax.topics,
        selection_scores={"partner_min_share": share_scores, "partner_min_share_multilateral": share_multi_scores,
                          "region_partner_weight": region.weight_scores_},
        views=views,
        sentences=sentence_model,
        partner_min_share_multilateral=share_multi,
    )


def fit_predictor(articles: Sequence[Article], embedder: Embedder, config: TrainConfig, *,
                  corpus: CorpusFeatures | None = None) -> Predictor:
    """The predictor learnt from ``articles``. ``corpus``: the fold-invariant features of a set of articles that
    includes these (computed once for all the fits of a training); by default computed here for ``articles``."""
    corpus = corpus or CorpusFeatures(articles, embedder, config)
    return Predictor(embedder, fit_model(articles, corpus, config), clean=config.clean)


def fit_model(articles: Sequence[Article], corpus: CorpusFeatures, config: TrainConfig) -> Heads:
    """Everything a predictor learns (the lexical view's vocabulary and weights, every head), learnt from
    ``articles`` only, read from their rows of ``corpus``. Needs no embedder: it runs in worker processes too."""
    rows = corpus.rows(articles)
    lexical, X = corpus.lexical.fit(rows) if corpus.lexical is not None else (None, None)
    F = Features(embedding=None if corpus.embeddings is None else corpus.embeddings[rows], lexical=X)
    sentences = vectorized = None
    if corpus.sentences is not None:
        sentences = [corpus.sentences[r] for r in rows]
        vectorized = corpus.sentence_counts.fit(corpus.sentence_rows(rows))
    heads = fit_heads(F, articles, [corpus.documents[r] for r in rows], config, sentences,
                      ranked=[corpus.ranked[r] for r in rows], sentence_vectorized=vectorized)
    heads.lexical = lexical
    return heads


def choose_min_share(documents_ranked: Sequence[Sequence[tuple[str, float]]],
                     gold: Sequence[Sequence[str]], grid: Sequence[float]) -> tuple[float, dict[float, float]]:
    """The prominence share that maximises micro-F1 of partner sets on the given (training) articles."""
    scores: dict[float, float] = {}
    for share in grid:
        tp = fp = fn = 0
        for ranked, truth in zip(documents_ranked, gold, strict=True):
            top = max((s for _, s in ranked), default=0.0)
            predicted = {c for c, s in ranked if s >= share * top}
            truth = set(truth)
            tp += len(predicted & truth)
            fp += len(predicted - truth)
            fn += len(truth - predicted)
        scores[share] = 2 * tp / max(2 * tp + fp + fn, 1)
    best = max(scores.values())
    return min(s for s, v in scores.items() if v >= best - 1e-12), scores
