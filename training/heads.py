"""The classifiers on top of the embeddings: sector, topics, region. Fitted state ends in ``_``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from training.config import LinearHeadConfig, RegionConfig, TopicsConfig

MAX_ITER = 3000


def linear_classifier(config: LinearHeadConfig) -> LogisticRegression:
    return LogisticRegression(C=config.C, class_weight=config.class_weight, max_iter=MAX_ITER)


def _inner_folds(y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds for choosing thresholds and weights on training data only."""
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    n_splits = max(2, min(n_splits, int(counts.min()) if counts.min() >= 2 else 2))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


class TopicsHead(BaseEstimator, ClassifierMixin):
    """One logistic regression per topic; each topic's threshold is the one with the best out-of-fold F1."""

    def __init__(self, config: TopicsConfig | None = None, inner_folds: int = 3, seed: int = 13) -> None:
        self.config = config
        self.inner_folds = inner_folds
        self.seed = seed

    def fit(self, X: np.ndarray, Y: np.ndarray) -> TopicsHead:
        config = self.config or TopicsConfig()
        Y = np.asarray(Y, dtype=int)
        self.models_: list[LogisticRegression | float] = []
        self.thresholds_ = np.full(Y.shape[1], 0.5)
        for t in range(Y.shape[1]):
            y = Y[:, t]
            if y.min() == y.max():  # a topic never (or always) seen: a constant answer
                self.models_.append(float(y[0]))
                continue
            oof = np.zeros(len(y))
            for train, test in _inner_folds(y, self.inner_folds, self.seed):
                model = linear_classifier(config).fit(X[train], y[train])
                oof[test] = model.predict_proba(X[test])[:, 1]
            scores = [f1_score(y, oof >= th, zero_division=0) for th in config.threshold_grid]
            self.thresholds_[t] = config.threshold_grid[int(np.argmax(scores))]
            self.models_.append(linear_classifier(config).fit(X, y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([
            np.full(len(X), m) if isinstance(m, float) else m.predict_proba(X)[:, 1] for m in self.models_
        ])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X) >= self.thresholds_).astype(int)


def gazetteer_prior(regions: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    """One-hot rows for the region the gazetteer found (zeros where it found no country)."""
    index = {c: i for i, c in enumerate(classes)}
    prior = np.zeros((len(regions), len(classes)))
    for row, region in enumerate(regions):
        if region in index:
            prior[row, index[region]] = 1.0
    return prior


class RegionHead(BaseEstimator, ClassifierMixin):
    """A region classifier whose probabilities can be mixed with the gazetteer's region.

    The mixing weight is chosen by inner cross-validation among ``config.partner_weight_grid``; the
    classifier alone (weight 0) is kept unless a mixture scores a better macro-F1.
    """

    def __init__(self, config: RegionConfig | None = None, inner_folds: int = 3, seed: int = 13) -> None:
        self.config = config
        self.inner_folds = inner_folds
        self.seed = seed

    def fit(self, X: np.ndarray, y: Sequence[str], gazetteer_regions: Sequence[str | None]) -> RegionHead:
        config = self.config or RegionConfig()
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        oof = np.zeros((len(y), len(self.classes_)))
        for train, test in _inner_folds(y, self.inner_folds, self.seed):
            model = linear_classifier(config).fit(X[train], y[train])
            cols = np.searchsorted(self.classes_, model.classes_)
            oof[np.ix_(test, cols)] = model.predict_proba(X[test])
        prior = gazetteer_prior(gazetteer_regions, self.classes_)
        self.weight_scores_ = {
            w: f1_score(y, self.classes_[np.argmax(self._mix(oof, prior, w), axis=1)], average="macro")
            for w in config.partner_weight_grid
        }
        best = max(self.weight_scores_.values())
        # Ties go to the smallest weight: the combination must earn its place.
        self.partner_weight_ = min(w for w, s in self.weight_scores_.items() if s >= best - 1e-12)
        self.model_ = linear_classifier(config).fit(X, y)
        return self

    @staticmethod
    def _mix(proba: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
        has_prior = prior.sum(axis=1, keepdims=True) > 0
        return np.where(has_prior, (1 - weight) * proba + weight * prior, proba)

    def predict_proba(self, X: np.ndarray, gazetteer_regions: Sequence[str | None]) -> np.ndarray:
        proba = self.model_.predict_proba(X)
        return self._mix(proba, gazetteer_prior(gazetteer_regions, self.classes_), self.partner_weight_)

    def predict(self, X: np.ndarray, gazetteer_regions: Sequence[str | None]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X, gazetteer_regions), axis=1)]


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
