"""Honest scores: grouped, stratified cross-validation on the written corpus, and a real-text check
(train on the written corpus only, score the seed-derived items). Never scores on training data."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402

from newsclf.embedding import Embedder  # noqa: E402
from newsclf.predictor import Prediction, Predictor  # noqa: E402
from newsclf.taxonomy import taxonomy  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.corpus_features import CorpusFeatures  # noqa: E402
from training.fit_pool import FitPool  # noqa: E402
from training.records import Article  # noqa: E402


@dataclass
class Evaluation:
    """Per-article predictions of one evaluation, and the scores computed from them."""

    name: str  # "cv" or "seed"
    articles: list[Article]
    predictions: list[Prediction]
    metrics: dict[str, float] = field(default_factory=dict)


def grouped_folds(articles: Sequence[Article], n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that keep every group whole and keep the sector mix of each fold close to the corpus's."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    y = [a.sector for a in articles]
    groups = [a.group for a in articles]
    return list(splitter.split(np.zeros(len(articles)), y, groups))


def cross_validate(articles: list[Article], embedder: Embedder, config: TrainConfig, *,
                   corpus: CorpusFeatures | None = None, pool: FitPool | None = None) -> Evaluation:
    """Out-of-fold predictions for every article. ``corpus``: fold-invariant features of (at least) ``articles``;
    ``pool``: where the folds are fitted (by default a pool of ``config.workers`` opened for them)."""
    corpus = corpus or CorpusFeatures(articles, embedder, config)
    folds = grouped_folds(articles, config.cv.folds, config.cv.seed)
    predictions: list[Prediction | None] = [None] * len(articles)
    with nullcontext(pool) if pool is not None else FitPool(corpus, config) as fits:
        fitted = [fits.submit([articles[i] for i in train]) for train, _ in folds]
        for (_, test), heads in zip(folds, fitted, strict=True):
            # Predicted here as each fold's heads arrive, while the workers fit the next folds.
            predictor = Predictor(embedder, heads.result(), clean=config.clean)
            for i, prediction in zip(test, predictor.predict([articles[i] for i in test]), strict=True):
                predictions[i] = prediction
    evaluation = Evaluation("cv", articles, predictions)  # type: ignore[arg-type]
    evaluation.metrics = score(articles, evaluation.predictions)
    return evaluation


def real_text_check(predictor: Predictor, seeds: list[Article]) -> Evaluation:
    """The seed-derived (real) items scored by ``predictor``, which must have learnt from the written corpus only."""
    evaluation = Evaluation("seed", seeds, predictor.predict(seeds))
    evaluation.metrics = score(seeds, evaluation.predictions)
    return evaluation


# --- scores -------------------------------------------------------------------------------------------
def _per_class(prefix: str, gold: list[str], pred: list[str], labels: Sequence[str]) -> dict[str, float]:
    present = [label for label in labels if label in set(gold) | set(pred)]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=present, zero_division=0)
    out = {}
    for i, label in enumerate(present):
        out |= {f"{prefix}.precision.{label}": p[i], f"{prefix}.recall.{label}": r[i],
                f"{prefix}.f1.{label}": f[i], f"{prefix}.support.{label}": float(s[i])}
    return out


ECE_BINS = 10
SCORED_LANGUAGES = ("fr", "en", "vi")


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[tuple]]:
    """Expected calibration error (share-weighted |accuracy - confidence| over equal-width bins), and the bins
    (low, high, count, mean confidence, accuracy) for the reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, ece = [], 0.0
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        inside = (confidence >= low) & ((confidence < high) if i < bins - 1 else (confidence <= high))
        if inside.any():
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += inside.mean() * abs(acc - conf)
            rows.append((low, high, int(inside.sum()), conf, acc))
    return float(ece), rows


def calibration_data(articles: Sequence[Article], predictions: Sequence[Prediction]) -> dict[str, tuple]:
    """head -> (confidence, correct): sector and region by their top label; topics by every topic's score."""
    tax = taxonomy()
    out = {}
    for head in ("sector", "region"):
        out[head] = (np.array([getattr(p, head).confidence for p in predictions]),
                     np.array([getattr(p, head).label == getattr(a, head) for a, p in zip(articles, predictions,
                                                                                          strict=True)]))
    out["topics"] = (np.array([p.topic_scores.get(t, 0.0) for p in predictions for t in tax.topics]),
                     np.array([t in a.topics for a in articles for t in tax.topics]))
    return out


def score(articles: Sequence[Article], predictions: Sequence[Prediction], *, by_language: bool = True
          ) -> dict[str, float]:
    tax = taxonomy()
    m: dict[str, float] = {"n_articles": float(len(articles))}
    for head, labels in (("sector", tax.sectors), ("region", tax.regions)):
        gold = [getattr(a, head) for a in articles]
        pred = [getattr(p, head).label for p in predictions]
        present = sorted(set(gold))  # macro-F1 over the classes the evaluated set holds
        m[f"{head}.macro_f1"] = f1_score(gold, pred, labels=present, average="macro", zero_division=0)
        m[f"{head}.accuracy"] = accuracy_score(gold, pred)
        m |= _per_class(head, gold, pred, labels)
    gold_t = np.array([[t in a.topics for t in tax.topics] for a in articles], dtype=int)
    pred_t = np.array([[t in {x for x, _ in p.topics} for t in tax.topics] for p in predictions], dtype=int)
    m["topics.micro_f1"] = f1_score(gold_t, pred_t, average="micro", zero_division=0)
    present = gold_t.sum(axis=0) > 0
    # Macro over the topics the evaluated set holds; a set with none (short teasers only) scores 0.
    m["topics.macro_f1"] = (
        f1_score(gold_t[:, present], pred_t[:, present], average="macro", zero_division=0) if present.any() else 0.0
    )
    p, r, f, s = precision_recall_fscore_support(gold_t, pred_t, zero_division=0)
    for i, topic in enumerate(tax.topics):
        m |= {f"topics.precision.{topic}": p[i], f"topics.recall.{topic}": r[i], f"topics.f1.{topic}": f[i],
              f"topics.support.{topic}": float(s[i])}
    tp = fp = fn = 0
    main_hits = main_total = 0
    for a, pr in zip(articles, predictions, strict=True):
        gold, pred = set(a.partners), set(pr.partners)
        tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
        if a.partners:
            main_total += 1
            main_hits += bool(pr.partners) and pr.partners[0] == a.partners[0]
    m["partners.precision"] = tp / max(tp + fp, 1)
    m["partners.recall"] = tp / max(tp + fn, 1)
    m["partners.micro_f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    m["partners.main_accuracy"] = main_hits / max(main_total, 1)
    for head, (confidence, correct) in calibration_data(articles, predictions).items():
        m[f"{head}.ece"] = reliability(confidence, correct)[0]
    if by_language:
        for lang in SCORED_LANGUAGES:
            subset = [i for i, a in enumerate(articles) if a.lang == lang]
            if subset:
                scores = score([articles[i] for i in subset], [predictions[i] for i in subset], by_language=False)
                m |= {f"lang.{lang}.{k}": scores[k] for k in (*HEADLINE_METRICS, "n_articles")}
    return {k: round(float(v), 4) for k, v in m.items()}


HEADLINE_METRICS = ("sector.macro_f1", "topics.micro_f1", "topics.macro_f1", "region.macro_f1", "partners.micro_f1")


# --- reports ------------------------------------------------------------------------------------------
def _save(fig, path: Path, dpi: int) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_reports(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Confusion-matrix plots and the table of misclassified articles; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tax = taxonomy()
    for head, labels in (("sector", tax.sectors), ("region", tax.regions)):
        gold = [getattr(a, head) for a in evaluation.articles]
        pred = [getattr(p, head).label for p in evaluation.predictions]
        present = [label for label in labels if label in set(gold) | set(pred)]
        fig, ax = plt.subplots(figsize=(7.5, 6.5))
        ConfusionMatrixDisplay.from_predictions(gold, pred, labels=present, ax=ax, colorbar=False,
                                                xticks_rotation=45, cmap="Blues")
        ax.set_title(f"{head}: {evaluation.name} (n={len(gold)})")
        written.append(_save(fig, folder / f"{evaluation.name}_confusion_{head}.png", dpi=110))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    for ax, (head, (confidence, correct)) in zip(axes, calibration_data(evaluation.articles,
                                                                       evaluation.predictions).items(), strict=True):
        ece, rows = reliability(confidence, correct)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.bar([(lo + hi) / 2 for lo, hi, *_ in rows], [acc for *_, acc in rows], width=1 / ECE_BINS,
               edgecolor="black", alpha=0.7)
        ax.plot([conf for *_, conf, _ in rows], [acc for *_, acc in rows], marker="o", color="darkred")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="observed accuracy",
               title=f"{head}: ECE {ece:.3f} (n={len(confidence)})")
    fig.suptitle(f"reliability: {evaluation.name}")
    written.append(_save(fig, folder / f"{evaluation.name}_reliability.png", dpi=100))
    path = folder / f"{evaluation.name}_misclassified.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "lang", "source", "head", "gold", "predicted", "confidence", "title"])
        for a, p in zip(evaluation.articles, evaluation.predictions, strict=True):
            rows = []
            if a.sector != p.sector.label:
                rows.append(("sector", a.sector, p.sector.label, p.sector.confidence))
            if a.region != p.region.label:
                rows.append(("region", a.region, p.region.label, p.region.confidence))
            pred_topics = sorted(t for t, _ in p.topics)
            if sorted(a.topics) != pred_topics:
                rows.append(("topics", " ".join(sorted(a.topics)), " ".join(pred_topics), ""))
            if set(a.partners) != set(p.partners):
                rows.append(("partners", " ".join(a.partners), " ".join(p.partners), ""))
            for head, gold, pred, conf in rows:
                out.writerow([a.id, a.lang, a.source, head, gold, pred, conf, a.title[:120]])
    written.append(path)
    return written


def format_table(evaluations: Sequence[Evaluation]) -> str:
    """The per-head summary printed at the end of a training."""
    names = [e.name for e in evaluations]
    lines = [f"{'metric':<22}" + "".join(f"{n:>10}" for n in names)]
    for metric in HEADLINE_METRICS + ("sector.accuracy", "region.accuracy", "partners.main_accuracy",
                                      "sector.ece", "region.ece", "topics.ece"):
        lines.append(f"{metric:<22}" + "".join(f"{e.metrics.get(metric, float('nan')):>10.3f}" for e in evaluations))
    lines.append(f"{'articles':<22}" + "".join(f"{len(e.articles):>10d}" for e in evaluations))
    return "\n".join(lines)
