"""Honest scores: grouped, stratified cross-validation on the written corpus, and a real-text check
(train on the written corpus only, score the seed-derived items). Never scores on training data."""

from __future__ import annotations

import csv
from collections.abc import Sequence
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
from newsclf.predictor import Prediction  # noqa: E402
from newsclf.taxonomy import taxonomy  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.fitting import fit_predictor  # noqa: E402
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


def cross_validate(articles: list[Article], embedder: Embedder, config: TrainConfig) -> Evaluation:
    predictions: list[Prediction | None] = [None] * len(articles)
    for train, test in grouped_folds(articles, config.cv.folds, config.cv.seed):
        predictor = fit_predictor([articles[i] for i in train], embedder, config)
        for i, prediction in zip(test, predictor.predict([articles[i] for i in test]), strict=True):
            predictions[i] = prediction
    evaluation = Evaluation("cv", articles, predictions)  # type: ignore[arg-type]
    evaluation.metrics = score(articles, evaluation.predictions)
    return evaluation


def real_text_check(written: list[Article], seeds: list[Article], embedder: Embedder,
                    config: TrainConfig) -> Evaluation:
    predictor = fit_predictor(written, embedder, config)
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


def score(articles: Sequence[Article], predictions: Sequence[Prediction]) -> dict[str, float]:
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
    return {k: round(float(v), 4) for k, v in m.items()}


HEADLINE_METRICS = ("sector.macro_f1", "topics.micro_f1", "topics.macro_f1", "region.macro_f1", "partners.micro_f1")


# --- reports ------------------------------------------------------------------------------------------
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
        fig.tight_layout()
        path = folder / f"{evaluation.name}_confusion_{head}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
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
    for metric in HEADLINE_METRICS + ("sector.accuracy", "region.accuracy", "partners.main_accuracy"):
        lines.append(f"{metric:<22}" + "".join(f"{e.metrics.get(metric, float('nan')):>10.3f}" for e in evaluations))
    lines.append(f"{'articles':<22}" + "".join(f"{len(e.articles):>10d}" for e in evaluations))
    return "\n".join(lines)
