"""Fitting the heads: the same code for every fold, the real-text check and the shipped model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from newsclf.embedding import Embedder
from newsclf.gazetteer import rank_partners
from newsclf.heads import RegionHead, TopicsHead, linear_classifier
from newsclf.predictor import Heads, Predictor, main_region, prepare_documents
from newsclf.taxonomy import taxonomy
from training.config import TrainConfig
from training.records import Article


def fit_heads(X, articles: Sequence[Article], documents: Sequence[str], config: TrainConfig) -> Heads:
    """Fit every head on features ``X`` of ``articles`` (whose prepared texts are ``documents``)."""
    topic_labels = taxonomy().topics
    Y = np.array([[t in a.topics for t in topic_labels] for a in articles], dtype=int)
    ranked = [rank_partners(d, min_share=0.0) for d in documents]
    foreign = [i for i, a in enumerate(articles) if a.sector != "none"]
    share, share_scores = choose_min_share(
        [ranked[i] for i in foreign], [articles[i].partners for i in foreign], config.partners.min_share_grid
    )
    cv = config.cv
    region = RegionHead(config.region.C, config.region.class_weight, config.region.partner_weight_grid,
                        cv.inner_folds, cv.seed).fit(X, [a.region for a in articles], [main_region(r) for r in ranked])
    topics = TopicsHead(config.topics.C, config.topics.class_weight, config.topics.threshold_grid,
                        cv.inner_folds, cv.seed).fit(X, Y)
    return Heads(
        sector=linear_classifier(config.sector.C, config.sector.class_weight).fit(X, [a.sector for a in articles]),
        topics=topics,
        region=region,
        partner_min_share=share,
        topic_labels=topic_labels,
        selection_scores={"partner_min_share": share_scores, "region_partner_weight": region.weight_scores_},
    )


def fit_predictor(articles: Sequence[Article], embedder: Embedder, config: TrainConfig) -> Predictor:
    """Embed (from the cache where possible) and fit the heads on ``articles``."""
    documents = prepare_documents(articles, clean=config.clean)
    return Predictor(embedder, fit_heads(embedder.encode(documents), articles, documents, config), clean=config.clean)


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
