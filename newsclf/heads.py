"""The classifiers on top of the article features: topics and region (sector is a plain logistic regression).

They are scikit-learn estimators (settings in ``__init__``, fitted state ending in ``_``) so that a fitted model
unpickles from the core alone; what to fit them on, and with which settings, is the trainer's business.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

MAX_ITER = 3000
DEFAULT_THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
DEFAULT_PARTNER_WEIGHTS = (0.0, 0.25, 0.5, 0.75)


def linear_classifier(C: float = 4.0, class_weight: str | None = "balanced") -> LogisticRegression:
    return LogisticRegression(C=C, class_weight=class_weight, max_iter=MAX_ITER)


def _inner_folds(y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds for choosing thresholds and weights on training data only."""
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    n_splits = max(2, min(n_splits, int(counts.min()) if counts.min() >= 2 else 2))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


class TopicsHead(BaseEstimator, ClassifierMixin):
    """One logistic regression per topic; each topic's threshold is the one with the best out-of-fold F1."""

    def __init__(self, C: float = 4.0, class_weight: str | None = "balanced",
                 threshold_grid: Sequence[float] = DEFAULT_THRESHOLDS, inner_folds: int = 3, seed: int = 13) -> None:
        self.C = C
        self.class_weight = class_weight
        self.threshold_grid = threshold_grid
        self.inner_folds = inner_folds
        self.seed = seed

    def fit(self, X: np.ndarray, Y: np.ndarray) -> TopicsHead:
        grid = tuple(self.threshold_grid)
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
                model = linear_classifier(self.C, self.class_weight).fit(X[train], y[train])
                oof[test] = model.predict_proba(X[test])[:, 1]
            scores = [f1_score(y, oof >= th, zero_division=0) for th in grid]
            self.thresholds_[t] = grid[int(np.argmax(scores))]
            self.models_.append(linear_classifier(self.C, self.class_weight).fit(X, y))
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

    The mixing weight is chosen by inner cross-validation among ``partner_weight_grid``; the
    classifier alone (weight 0) is kept unless a mixture scores a better macro-F1.
    """

    def __init__(self, C: float = 4.0, class_weight: str | None = "balanced",
                 partner_weight_grid: Sequence[float] = DEFAULT_PARTNER_WEIGHTS, inner_folds: int = 3,
                 seed: int = 13) -> None:
        self.C = C
        self.class_weight = class_weight
        self.partner_weight_grid = partner_weight_grid
        self.inner_folds = inner_folds
        self.seed = seed

    def fit(self, X: np.ndarray, y: Sequence[str], gazetteer_regions: Sequence[str | None]) -> RegionHead:
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        oof = np.zeros((len(y), len(self.classes_)))
        for train, test in _inner_folds(y, self.inner_folds, self.seed):
            model = linear_classifier(self.C, self.class_weight).fit(X[train], y[train])
            cols = np.searchsorted(self.classes_, model.classes_)
            oof[np.ix_(test, cols)] = model.predict_proba(X[test])
        prior = gazetteer_prior(gazetteer_regions, self.classes_)
        self.weight_scores_ = {
            w: f1_score(y, self.classes_[np.argmax(self._mix(oof, prior, w), axis=1)], average="macro")
            for w in self.partner_weight_grid
        }
        best = max(self.weight_scores_.values())
        # Ties go to the smallest weight: the combination must earn its place.
        self.partner_weight_ = min(w for w, s in self.weight_scores_.items() if s >= best - 1e-12)
        self.model_ = linear_classifier(self.C, self.class_weight).fit(X, y)
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
