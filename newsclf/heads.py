"""The classifiers on top of the article features: sector, topics, region, and the sentence-level topic model.

An article is seen through one or two *views*: its sentence embedding and its lexical (word and character
n-gram TF-IDF) vector. Each head fits one logistic regression per view and averages their probabilities with a
weight chosen on inner cross-validated (out-of-fold) probabilities of the training data, then rescales them by a
temperature fitted on the same out-of-fold probabilities, so that a confidence of 0.8 is right about 80% of
the time. The topic head can also read the best sentence of a sentence-level model trained on the evidence
sentences of the corpus, so that a topic named in passing weighs less than one the article reports as
cooperation.

They are scikit-learn estimators (settings in ``__init__``, fitted state ending in ``_``) so that a fitted model
unpickles from the core alone; what to fit them on, and with which settings, is the trainer's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier

from newsclf.lexical import lexical_vectorizer

SENTENCE_CHAR_FEATURES = 100_000

MAX_ITER = 3000
VIEWS = ("embedding", "lexical")
DEFAULT_THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
DEFAULT_PARTNER_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
DEFAULT_VIEW_WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)  # share of the embedding view
DEFAULT_SENTENCE_WEIGHTS = (0.0, 0.25, 0.5, 0.75)  # share of the best sentence in a topic's score
TEMPERATURES = tuple(np.round(np.exp(np.linspace(np.log(0.25), np.log(4.0), 41)), 4))
EPS = 1e-6


def linear_classifier(C: float = 4.0, class_weight: str | None = "balanced") -> LogisticRegression:
    return LogisticRegression(C=C, class_weight=class_weight, max_iter=MAX_ITER)


def sparse_classifier(C: float, class_weight: str | None, n_classes: int):
    """Logistic regression for the sparse lexical view: liblinear's dual solver (tens of thousands of n-grams,
    hundreds of articles: 3-20x faster than lbfgs here), one-vs-rest when there are more than two classes.
    liblinear visits the articles in a random order: a fixed seed makes a training reproducible to the bit (the
    global random state differed from one run, and one worker process, to the next)."""
    model = LogisticRegression(C=C, class_weight=class_weight, solver="liblinear", dual=True, max_iter=MAX_ITER,
                               random_state=0)
    return model if n_classes <= 2 else OneVsRestClassifier(model)


@dataclass
class Features:
    """The views of a batch of articles: ``embedding`` (dense, unit rows) and ``lexical`` (sparse TF-IDF)."""

    embedding: np.ndarray | None = None
    lexical: object | None = None  # a scipy sparse matrix

    def __len__(self) -> int:
        view = self.embedding if self.embedding is not None else self.lexical
        return 0 if view is None else view.shape[0]

    def view(self, name: str):
        return getattr(self, name)

    def rows(self, index: np.ndarray) -> Features:
        return Features(*(None if v is None else v[index] for v in (self.embedding, self.lexical)))


def _inner_folds(y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds for choosing weights, temperatures and thresholds on training data only."""
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    n_splits = max(2, min(n_splits, int(counts.min()) if counts.min() >= 2 else 2))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def with_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities rescaled as softmax(log p / T): T > 1 softens over-confident scores, T < 1 sharpens."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def _normalised(proba: np.ndarray) -> np.ndarray:
    """Clipped away from 0 and summing to 1 per row (a fold's model may not know every class)."""
    proba = np.clip(proba, EPS, 1.0)
    return proba / proba.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, y_index: np.ndarray) -> float:
    """The temperature that minimises the log loss of out-of-fold probabilities (a 1-parameter calibration)."""
    losses = [-np.mean(np.log(np.clip(with_temperature(proba, t)[np.arange(len(y_index)), y_index], EPS, 1)))
              for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


class ViewBlend(BaseEstimator, ClassifierMixin):
    """Logistic regressions on each available view, blended and calibrated on inner out-of-fold probabilities.

    ``views``: the views to read (a subset of ``VIEWS``); ``weight_``: share of the embedding view, chosen among
    ``weight_grid`` by out-of-fold log loss (ties go to the even mix); ``temperature_``: fitted on the blended
    out-of-fold probabilities when ``calibrate``. ``oof_proba_``: those probabilities after calibration, kept for
    the caller's own choices (thresholds) on the same folds.
    """

    def __init__(self, views: Sequence[str] = ("embedding",), C_embedding: float = 4.0, C_lexical: float = 10.0,
                 class_weight: str | None = "balanced", weight_grid: Sequence[float] = DEFAULT_VIEW_WEIGHTS,
                 calibrate: bool = True, inner_folds: int = 3, seed: int = 13) -> None:
        self.views = views
        self.C_embedding = C_embedding
        self.C_lexical = C_lexical
        self.class_weight = class_weight
        self.weight_grid = weight_grid
        self.calibrate = calibrate
        self.inner_folds = inner_folds
        self.seed = seed

    def _model(self, view: str):
        if view == "embedding":
            return linear_classifier(self.C_embedding, self.class_weight)
        return sparse_classifier(self.C_lexical, self.class_weight, len(self.classes_))

    def _blend(self, by_view: dict[str, np.ndarray], weight: float) -> np.ndarray:
        # Each view on its own calibrated scale first: otherwise the weight would favour whichever logistic
        # regression happens to be sharper, not the one that knows more.
        by_view = {v: with_temperature(p, self.view_temperatures_.get(v, 1.0)) for v, p in by_view.items()}
        if len(by_view) == 1:
            return next(iter(by_view.values()))
        return weight * by_view["embedding"] + (1 - weight) * by_view["lexical"]

    def fit(self, F: Features, y: Sequence) -> ViewBlend:
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.views_ = tuple(v for v in self.views if F.view(v) is not None)
        if not self.views_:
            raise ValueError(f"none of the views {tuple(self.views)} is in the features")
        y_index = np.searchsorted(self.classes_, y)
        oof = {v: np.zeros((len(y), len(self.classes_))) for v in self.views_}
        for train, test in _inner_folds(y, self.inner_folds, self.seed):
            for v in self.views_:
                model = self._model(v).fit(F.view(v)[train], y[train])
                cols = np.searchsorted(self.classes_, model.classes_)
                oof[v][np.ix_(test, cols)] = model.predict_proba(F.view(v)[test])
        self.view_temperatures_ = ({v: fit_temperature(oof[v], y_index) for v in self.views_}
                                   if self.calibrate and len(self.views_) == 2 else {})
        if len(self.views_) == 2:
            losses = {w: log_loss(y_index, _normalised(self._blend(oof, w)), labels=range(len(self.classes_)))
                      for w in self.weight_grid}
            best = min(losses.values())
            self.weight_scores_ = losses
            self.weight_ = min((w for w, loss in losses.items() if loss <= best + 1e-9), key=lambda w: abs(w - 0.5))
        else:
            self.weight_scores_ = {}
            self.weight_ = 1.0 if self.views_ == ("embedding",) else 0.0
        blended = self._blend(oof, self.weight_)
        self.temperature_ = fit_temperature(blended, y_index) if self.calibrate else 1.0
        self.oof_proba_ = with_temperature(blended, self.temperature_)
        self.models_ = {v: self._model(v).fit(F.view(v), y) for v in self.views_}
        return self

    def predict_proba(self, F: Features) -> np.ndarray:
        by_view = {}
        for v, model in self.models_.items():
            proba = np.zeros((len(F), len(self.classes_)))
            proba[:, np.searchsorted(self.classes_, model.classes_)] = model.predict_proba(F.view(v))
            by_view[v] = proba
        return with_temperature(self._blend(by_view, self.weight_), self.temperature_)

    def predict(self, F: Features) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(F), axis=1)]


class TopicsHead(BaseEstimator, ClassifierMixin):
    """One blended, calibrated classifier per topic, optionally mixed with the topic's best-sentence score.

    Per topic: the share of the sentence score is chosen among ``sentence_weight_grid`` by out-of-fold log loss,
    then the decision threshold with the best out-of-fold F1 among ``threshold_grid``.
    """

    def __init__(self, views: Sequence[str] = ("embedding",), C_embedding: float = 4.0, C_lexical: float = 10.0,
                 class_weight: str | None = "balanced", threshold_grid: Sequence[float] = DEFAULT_THRESHOLDS,
                 sentence_weight_grid: Sequence[float] = DEFAULT_SENTENCE_WEIGHTS, calibrate: bool = True,
                 inner_folds: int = 3, seed: int = 13, n_jobs: int = 1) -> None:
        self.views = views
        self.C_embedding = C_embedding
        self.C_lexical = C_lexical
        self.class_weight = class_weight
        self.threshold_grid = threshold_grid
        self.sentence_weight_grid = sentence_weight_grid
        self.calibrate = calibrate
        self.inner_folds = inner_folds
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, F: Features, Y: np.ndarray, sentence_oof: np.ndarray | None = None) -> TopicsHead:
        """``sentence_oof``: out-of-fold best-sentence scores (articles x topics), or None for no sentence model."""
        grid = tuple(self.threshold_grid)
        Y = np.asarray(Y, dtype=int)
        self.thresholds_ = np.full(Y.shape[1], 0.5)
        self.sentence_weights_ = np.zeros(Y.shape[1])

        def one(t: int) -> ViewBlend | float:
            if Y[:, t].min() == Y[:, t].max():  # a topic never (or always) seen: a constant answer
                return float(Y[0, t])
            return ViewBlend(self.views, self.C_embedding, self.C_lexical, self.class_weight,
                             calibrate=self.calibrate, inner_folds=self.inner_folds, seed=self.seed).fit(F, Y[:, t])

        # Topics are independent and may be fitted in threads (liblinear and BLAS release the GIL), but then not
        # reproducibly: liblinear's random generator is shared by the threads. Training fits with n_jobs=1.
        self.models_: list[ViewBlend | float] = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(one)(t) for t in range(Y.shape[1]))
        for t, blend in enumerate(self.models_):
            if isinstance(blend, float):
                continue
            y = Y[:, t]
            oof = blend.oof_proba_[:, 1]
            if sentence_oof is not None:
                s = sentence_oof[:, t]
                losses = {a: log_loss(y, np.clip((1 - a) * oof + a * s, EPS, 1 - EPS), labels=[0, 1])
                          for a in self.sentence_weight_grid}
                best = min(losses.values())
                self.sentence_weights_[t] = min(a for a, loss in losses.items() if loss <= best + 1e-9)
                oof = (1 - self.sentence_weights_[t]) * oof + self.sentence_weights_[t] * s
            scores = [f1_score(y, oof >= th, zero_division=0) for th in grid]
            self.thresholds_[t] = grid[int(np.argmax(scores))]
        return self

    def predict_proba(self, F: Features, sentence_scores: np.ndarray | None = None) -> np.ndarray:
        article = np.column_stack([
            np.full(len(F), m) if isinstance(m, float) else m.predict_proba(F)[:, 1] for m in self.models_
        ])
        if sentence_scores is None or not self.sentence_weights_.any():
            return article
        return (1 - self.sentence_weights_) * article + self.sentence_weights_ * sentence_scores

    def predict(self, F: Features, sentence_scores: np.ndarray | None = None) -> np.ndarray:
        return (self.predict_proba(F, sentence_scores) >= self.thresholds_).astype(int)


class SentenceTopics(BaseEstimator):
    """Which topic a sentence states as cooperation: a TF-IDF logistic regression per topic, on sentences.

    Trained on the corpus's evidence sentences (positive for their topic) against every other sentence of the
    articles (negative), so that "the region faces terrorism" in a speech and "the two sides agreed to fight
    terrorism" are told apart by their words, not only by the article around them.
    """

    def __init__(self, C: float = 4.0, class_weight: str | None = "balanced", n_jobs: int = 1) -> None:
        self.C = C
        self.class_weight = class_weight
        self.n_jobs = n_jobs

    @staticmethod
    def vectorizer():
        """The sentence vectorizer, unfitted."""
        return lexical_vectorizer(max_char_features=SENTENCE_CHAR_FEATURES)

    @classmethod
    def vectorize(cls, sentences: Sequence[str]):
        """The sentence vectorizer, fitted, and the sentences' matrix (fit it once, reuse its rows in folds)."""
        vectorizer = cls.vectorizer()
        return vectorizer, vectorizer.fit_transform(sentences)

    def fit(self, sentences: Sequence[str], Y: np.ndarray, *, vectorized=None) -> SentenceTopics:
        """``vectorized``: (vectorizer, matrix of ``sentences``) already computed by ``vectorize``."""
        Y = np.asarray(Y, dtype=int)
        self.vectorizer_, X = vectorized if vectorized is not None else self.vectorize(sentences)

        def one(t: int):
            if Y[:, t].min() == Y[:, t].max():
                return float(Y[0, t])
            return sparse_classifier(self.C, self.class_weight, 2).fit(X, Y[:, t])

        self.models_ = Parallel(n_jobs=self.n_jobs, prefer="threads")(delayed(one)(t) for t in range(Y.shape[1]))
        return self

    def predict_proba(self, sentences: Sequence[str], X=None) -> np.ndarray:
        """``X``: the sentences already vectorized (by this model's vectorizer)."""
        if not sentences and X is None:
            return np.zeros((0, len(self.models_)))
        X = self.vectorizer_.transform(sentences) if X is None else X
        return np.column_stack([np.full(X.shape[0], m) if isinstance(m, float) else m.predict_proba(X)[:, 1]
                                for m in self.models_])

    def best(self, per_article: Sequence[Sequence[str]], X=None) -> tuple[np.ndarray, np.ndarray]:
        """(best score, index of the best sentence) per article and topic; 0 and -1 for an article without
        sentences. ``X``: the flattened sentences already vectorized."""
        flat = [s for sentences in per_article for s in sentences]
        proba = self.predict_proba(flat, X)
        scores = np.zeros((len(per_article), len(self.models_)))
        index = np.full((len(per_article), len(self.models_)), -1)
        start = 0
        for i, sentences in enumerate(per_article):
            if sentences:
                block = proba[start:start + len(sentences)]
                index[i] = np.argmax(block, axis=0)
                scores[i] = block[index[i], np.arange(block.shape[1])]
            start += len(sentences)
        return scores, index


def gazetteer_prior(regions: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    """One-hot rows for the region the gazetteer found (zeros where it found nothing)."""
    index = {c: i for i, c in enumerate(classes)}
    prior = np.zeros((len(regions), len(classes)))
    for row, region in enumerate(regions):
        if region in index:
            prior[row, index[region]] = 1.0
    return prior


class RegionHead(BaseEstimator, ClassifierMixin):
    """A blended, calibrated region classifier whose probabilities can be mixed with the gazetteer's region.

    The mixing weight is chosen by inner cross-validation among ``partner_weight_grid``; the
    classifier alone (weight 0) is kept unless a mixture scores a better macro-F1.
    """

    def __init__(self, views: Sequence[str] = ("embedding",), C_embedding: float = 4.0, C_lexical: float = 10.0,
                 class_weight: str | None = "balanced", partner_weight_grid: Sequence[float] = DEFAULT_PARTNER_WEIGHTS,
                 calibrate: bool = True, inner_folds: int = 3, seed: int = 13) -> None:
        self.views = views
        self.C_embedding = C_embedding
        self.C_lexical = C_lexical
        self.class_weight = class_weight
        self.partner_weight_grid = partner_weight_grid
        self.calibrate = calibrate
        self.inner_folds = inner_folds
        self.seed = seed

    def fit(self, F: Features, y: Sequence[str], gazetteer_regions: Sequence[str | None]) -> RegionHead:
        y = np.asarray(y)
        self.model_ = ViewBlend(self.views, self.C_embedding, self.C_lexical, self.class_weight,
                                calibrate=self.calibrate, inner_folds=self.inner_folds, seed=self.seed).fit(F, y)
        self.classes_ = self.model_.classes_
        prior = gazetteer_prior(gazetteer_regions, self.classes_)
        self.weight_scores_ = {
            w: f1_score(y, self.classes_[np.argmax(self._mix(self.model_.oof_proba_, prior, w), axis=1)],
                        average="macro")
            for w in self.partner_weight_grid
        }
        best = max(self.weight_scores_.values())
        # Ties go to the smallest weight: the combination must earn its place.
        self.partner_weight_ = min(w for w, s in self.weight_scores_.items() if s >= best - 1e-12)
        # The gazetteer's one-hot vote makes the mixture over-confident: calibrate the mixture itself (a
        # temperature changes no label, only what the confidence says).
        mixed = self._mix(self.model_.oof_proba_, prior, self.partner_weight_)
        self.temperature_ = fit_temperature(mixed, np.searchsorted(self.classes_, y)) if self.calibrate else 1.0
        return self

    @staticmethod
    def _mix(proba: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
        has_prior = prior.sum(axis=1, keepdims=True) > 0
        return np.where(has_prior, (1 - weight) * proba + weight * prior, proba)

    def predict_proba(self, F: Features, gazetteer_regions: Sequence[str | None]) -> np.ndarray:
        proba = self.model_.predict_proba(F)
        mixed = self._mix(proba, gazetteer_prior(gazetteer_regions, self.classes_), self.partner_weight_)
        return with_temperature(mixed, self.temperature_)

    def predict(self, F: Features, gazetteer_regions: Sequence[str | None]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(F, gazetteer_regions), axis=1)]
