"""Baselines, scored exactly like the pipeline, each an MLflow run tagged ``kind=baseline``.

    newsclf baselines [--only tfidf,zeroshot,setfit] [--config configs/train.yaml]

Same corpus, same folds (``grouped_folds`` with the config's ``cv.folds`` and ``cv.seed``), same real-text
check (fit on the written corpus, score the seed-derived items), same cleaning (``prepare_document``), same
metric names (``training.evaluation.score``, logged as ``cv.<head>.<metric>`` and ``seed.<head>.<metric>``)
in the same experiment as ``newsclf train``:

- ``tfidf``: word (1-2) and character (2-5, within words) TF-IDF n-grams, fitted on each training fold only,
  under the pipeline's own heads (``fit_heads``: logistic regression for sector; one per topic with its
  threshold tuned by inner CV; region; partners from the gazetteer with the share chosen on the training
  fold). Only the features differ from the pipeline.
- ``zeroshot``: no training. Cosine between the article embedding (the pipeline's embedder, prefix and
  long-text handling, from the embedding cache) and each label's prototype: the mean of the embeddings of its
  English, French and Vietnamese definitions in ``newsclf/data/taxonomy.yaml``, embedded with the prefix
  ``"query: "`` (e5's advice for symmetric similarity; the articles carry the same prefix). Sector and region:
  the most similar label. Topics: those whose similarity exceeds the article's mean topic similarity by at
  least ``--topic-margin`` (0.02: set from the spread of those similarities, about the 90th percentile of the
  deviations on 40 written articles, never from a score). Partners: the gazetteer at its default share (0.3).
  The prediction is assembled by the pipeline's code (the rules for domestic news included).
- ``setfit``: SetFit-style contrastive fine-tuning of the embedder. Not run: one epoch of sentence pairs is
  timed on a sample and extrapolated to the full protocol; the run records the figures and
  ``status=not_feasible`` when one fine-tuning exceeds the budget (30 minutes on this machine).
- ``pipeline``: the normal training (``newsclf train``), in a run tagged ``kind=pipeline``; it
  registers its model like ``newsclf train`` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import mlflow
import numpy as np
from sklearn.pipeline import FeatureUnion

from newsclf.embedding import Embedder, EmbedderUnavailable, resolve_model_path
from newsclf.heads import Features
from newsclf.lexical import lexical_vectorizer
from newsclf.predictor import Heads, Prediction, assemble_predictions, prepare_documents
from newsclf.taxonomy import taxonomy
from training.config import ConfigError, TrainConfig, load_config
from training.evaluation import Evaluation, format_table, grouped_folds, score, write_reports
from training.fitting import fit_heads
from training.pipeline import TrainingData, load_training_data
from training.records import LANGS, Article
from training.tracking import git_commit, start_run
from training.train import run_training
from training.validate_corpus import CorpusInvalid

log = logging.getLogger("training.baselines")

DEFAULT_ONLY = ("tfidf", "zeroshot", "setfit")
CHOICES = (*DEFAULT_ONLY, "pipeline")
TFIDF_C = 10.0  # TF-IDF features are sparse and many: less regularisation than the embedding heads' 4.0
LABEL_PREFIX = "query: "
TOPIC_MARGIN = 0.02
ZEROSHOT_MIN_SHARE = 0.3  # rank_partners' default: zero-shot learns nothing, not even this share
SETFIT_BUDGET_MINUTES = 30.0
SETFIT_ITERATIONS = 20  # SetFit's default num_iterations: 2 pairs (one positive, one negative) per article each

EXAMPLES = """examples:
  newsclf baselines                              # tfidf, zeroshot and the setfit feasibility measure
  newsclf baselines --only tfidf,pipeline        # TF-IDF beside the pipeline, same folds, same metrics
  newsclf baselines --only zeroshot --topic-margin 0.03
"""


class Baseline(Protocol):
    def fit(self, articles: Sequence[Article]) -> Baseline: ...

    def predict(self, articles: Sequence[Article]) -> list[Prediction]: ...


# --- the shared protocol ----------------------------------------------------------------------------------
Split = TrainingData  # the pipeline's own split: written articles (cross-validated) and seed items


def evaluate(make: Callable[[], Baseline], split: Split, config: TrainConfig) -> tuple[Evaluation, Evaluation]:
    """Cross-validation on the pipeline's folds, then the real-text check, as ``training.evaluation`` does."""
    written = split.written
    predictions: list[Prediction | None] = [None] * len(written)
    for train, test in grouped_folds(written, config.cv.folds, config.cv.seed):
        model = make().fit([written[i] for i in train])
        for i, prediction in zip(test, model.predict([written[i] for i in test]), strict=True):
            predictions[i] = prediction
    cv = Evaluation("cv", written, predictions)  # type: ignore[arg-type]
    cv.metrics = score(written, cv.predictions)
    seed_predictions = make().fit(written).predict(split.seeds)
    seed = Evaluation("seed", split.seeds, seed_predictions, score(split.seeds, seed_predictions))
    return cv, seed


# --- (a) TF-IDF + logistic regression -----------------------------------------------------------------------
def tfidf_features() -> FeatureUnion:
    return lexical_vectorizer()  # the pipeline's own lexical view


class TfidfBaseline:
    def __init__(self, config: TrainConfig, C: float = TFIDF_C) -> None:
        self.config = config
        self.C = C

    def fit(self, articles: Sequence[Article]) -> TfidfBaseline:
        # The pipeline's heads on the lexical view alone, as first measured: no calibration, no sentence model.
        update = {head: getattr(self.config, head).model_copy(update={"C_lexical": self.C})
                  for head in ("sector", "region")}
        update["topics"] = self.config.topics.model_copy(update={"C_lexical": self.C, "sentence_model": False})
        heads_config = self.config.model_copy(update=update | {"features": "lexical", "calibrate": False})
        documents = prepare_documents(articles, clean=self.config.clean)
        self.vectorizer_ = tfidf_features()
        X = self.vectorizer_.fit_transform(documents)
        self.heads_ = fit_heads(Features(lexical=X), articles, documents, heads_config)
        return self

    def predict(self, articles: Sequence[Article]) -> list[Prediction]:
        documents = prepare_documents(articles, clean=self.config.clean)
        # The pipeline's own assembly (thresholds, region mixing, partners, the rules for domestic news): a
        # baseline differs from the pipeline in its features and nothing else.
        return assemble_predictions(self.heads_, documents, Features(lexical=self.vectorizer_.transform(documents)))


# --- (b) zero-shot by label definitions ---------------------------------------------------------------------
def label_prototypes(embedder: Embedder, prefix: str = LABEL_PREFIX) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """head -> (labels, unit prototype per label): the mean of its definitions' embeddings in en, fr, vi."""
    tax = taxonomy()
    out = {}
    for head, labels in (("sector", tax.sectors), ("topics", tax.topics), ("region", tax.regions)):
        texts = [prefix + tax.definitions[head][label][lang] for label in labels for lang in LANGS]
        vectors = embedder.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
        mean = vectors.reshape(len(labels), len(LANGS), -1).mean(axis=1)
        out[head] = (tuple(labels), mean / np.linalg.norm(mean, axis=1, keepdims=True))
    return out


class _SimilarityHead:
    """Cosine to each label's prototype, in the shape of a fitted head (``classes_``, ``predict_proba``)."""

    def __init__(self, labels: Sequence[str], prototypes: np.ndarray) -> None:
        self.classes_ = np.array(labels)
        self.prototypes = prototypes

    def predict_proba(self, F: Features, gazetteer_regions: Sequence[str | None] | None = None) -> np.ndarray:
        return F.embedding @ self.prototypes.T


class _TopicMarginHead:
    """Each topic's similarity minus the article's mean topic similarity; the threshold is the margin."""

    def __init__(self, prototypes: np.ndarray, margin: float) -> None:
        self.prototypes = prototypes
        self.thresholds_ = np.full(len(prototypes), margin)

    def predict_proba(self, F: Features, sentence_scores: np.ndarray | None = None) -> np.ndarray:
        sims = F.embedding @ self.prototypes.T
        return sims - sims.mean(axis=1, keepdims=True)


class ZeroShotBaseline:
    """Label definitions as the only knowledge; predictions assembled by the pipeline's own code."""

    def __init__(self, embedder: Embedder, prototypes: dict, *, clean: bool = True,
                 topic_margin: float = TOPIC_MARGIN) -> None:
        self.embedder = embedder
        self.prototypes = prototypes
        self.clean = clean
        self.topic_margin = topic_margin

    def fit(self, articles: Sequence[Article]) -> ZeroShotBaseline:
        # Nothing is learnt from the labelled articles: the "heads" are the label prototypes.
        (sectors, s), (topics, t), (regions, r) = (self.prototypes[h] for h in ("sector", "topics", "region"))
        heads = Heads(
            sector=_SimilarityHead(sectors, s),  # type: ignore[arg-type]
            topics=_TopicMarginHead(t, self.topic_margin),  # type: ignore[arg-type]
            region=_SimilarityHead(regions, r),  # type: ignore[arg-type]
            partner_min_share=ZEROSHOT_MIN_SHARE, topic_labels=topics,
        )
        self.heads_ = heads
        return self

    def predict(self, articles: Sequence[Article]) -> list[Prediction]:
        documents = prepare_documents(articles, clean=self.clean)
        return assemble_predictions(self.heads_, documents, Features(embedding=self.embedder.encode(documents)))


# --- (d) SetFit-style contrastive fine-tuning: is it affordable here? ----------------------------------------
def setfit_pairs(articles: Sequence[Article], documents: Sequence[str], n_anchors: int, seed: int,
                 prefix: str) -> list:
    """SetFit's pair generation on the sector labels: per anchor one positive and one negative pair."""
    from sentence_transformers import InputExample

    rng = np.random.default_rng(seed)
    sectors = np.array([a.sector for a in articles])
    pairs = []
    for i in rng.choice(len(articles), size=n_anchors, replace=False):
        same = np.flatnonzero((sectors == sectors[i]) & (np.arange(len(articles)) != i))
        other = np.flatnonzero(sectors != sectors[i])
        for j, label in ((rng.choice(same), 1.0), (rng.choice(other), 0.0)):
            pairs.append(InputExample(texts=[prefix + documents[i], prefix + documents[j]], label=label))
    return pairs


def time_setfit(config: TrainConfig, split: Split, *, sample_pairs: int = 32, batch_size: int = 8) -> dict:
    """Seconds per contrastive pair on this machine, and what a SetFit fine-tuning would take."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from sentence_transformers.util import is_training_available
    from torch.utils.data import DataLoader

    documents = prepare_documents(split.written, clean=config.clean)
    pairs = setfit_pairs(split.written, documents, (sample_pairs + batch_size) // 2, config.cv.seed,
                         config.embedder.prefix)
    # A fresh copy of the embedder: fine-tuning changes its weights.
    model = SentenceTransformer(resolve_model_path(config.embedder), device="cpu")
    loss = CosineSimilarityLoss(model)
    # fit() runs on the Trainer, which needs the `datasets` and `accelerate` packages; the project does not
    # install them, and old_fit (the pre-v3 loop) costs the same forward and backward passes.
    trainer = "fit" if is_training_available() else "old_fit"

    def one_epoch(examples: list) -> float:
        loader = DataLoader(examples, batch_size=batch_size, shuffle=True)
        started = time.perf_counter()
        getattr(model, trainer)(train_objectives=[(loader, loss)], epochs=1, warmup_steps=0,
                                show_progress_bar=False)
        return time.perf_counter() - started

    one_epoch(pairs[:batch_size])  # warm-up step: allocations and thread pools, not counted
    timed = pairs[batch_size:]
    seconds = one_epoch(timed)
    per_pair = seconds / len(timed)
    # Re-embedding is part of every fold too: the fine-tuned encoder changes every article's vector.
    started = time.perf_counter()
    model.encode([config.embedder.prefix + d for d in documents[:32]], batch_size=config.embedder.batch_size)
    per_article = (time.perf_counter() - started) / 32
    n_written, folds = len(split.written), config.cv.folds
    pairs_full = 2 * SETFIT_ITERATIONS * n_written
    pairs_fold = 2 * SETFIT_ITERATIONS * n_written * (folds - 1) / folds
    n_all = n_written + len(split.seeds)
    one_training = pairs_full * per_pair / 60
    protocol = (folds * pairs_fold * per_pair + pairs_full * per_pair + (folds + 1) * n_all * per_article) / 60
    return {
        "trainer": trainer, "loss": "CosineSimilarityLoss", "timed_pairs": len(timed), "batch_size": batch_size,
        "max_seq_length": int(model.max_seq_length), "torch_threads": torch.get_num_threads(),
        "measured_seconds": seconds, "seconds_per_pair": per_pair, "embed_seconds_per_article": per_article,
        "iterations": SETFIT_ITERATIONS, "pairs_one_training": pairs_full,
        "minutes_one_training": one_training, "minutes_cv_protocol": protocol,
        "minutes_one_training_1_iteration": one_training / SETFIT_ITERATIONS,
        "budget_minutes": SETFIT_BUDGET_MINUTES, "feasible": one_training <= SETFIT_BUDGET_MINUTES,
    }


# --- MLflow -------------------------------------------------------------------------------------------------
def log_run(config: TrainConfig, name: str, *, split: Split, params: dict, tags: dict,
            evaluations: Sequence[Evaluation] = (), metrics: dict | None = None) -> str:
    with start_run(config, run_name=f"baseline-{name}") as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"kind": "baseline", "baseline": name, "dataset_hash": split.data_hash} | tags)
        mlflow.log_params({
            "baseline": name, "git_commit": git_commit(), "dataset_hash": split.data_hash,
            "clean": config.clean, "cv.folds": config.cv.folds, "cv.seed": config.cv.seed,
            "n_written": len(split.written), "n_seed_items": len(split.seeds),
        } | params)
        logged = dict(metrics or {})
        for evaluation in evaluations:
            logged |= {f"{evaluation.name}.{k}": v for k, v in evaluation.metrics.items()}
            for path in write_reports(evaluation, Path(tmp) / "reports"):
                mlflow.log_artifact(str(path), artifact_path="reports")
        mlflow.log_metrics(logged)
        return run.info.run_id


def run_tfidf(config: TrainConfig, split: Split, C: float) -> tuple[str, list[Evaluation]]:
    started = time.perf_counter()
    cv, seed = evaluate(lambda: TfidfBaseline(config, C), split, config)
    run_id = log_run(config, "tfidf", split=split, evaluations=[cv, seed],
                     params={"features": "tfidf word 1-2 + char_wb 2-5 (min_df 2, sublinear tf)",
                             "heads": "training.fitting.fit_heads (lexical view)", "C": C,
                             "class_weight": config.sector.class_weight},
                     tags={}, metrics={"timing.total_seconds": time.perf_counter() - started})
    return run_id, [cv, seed]


def run_zeroshot(config: TrainConfig, split: Split, prefix: str, margin: float) -> tuple[str, list[Evaluation]]:
    started = time.perf_counter()
    embedder = Embedder(config.embedder)
    prototypes = label_prototypes(embedder, prefix)
    cv, seed = evaluate(lambda: ZeroShotBaseline(embedder, prototypes, clean=config.clean, topic_margin=margin),
                        split, config)
    run_id = log_run(config, "zeroshot", split=split, evaluations=[cv, seed], params={
        "embedder_identity": embedder.identity, "label_prefix": prefix, "article_prefix": config.embedder.prefix,
        "label_text": "mean of en+fr+vi definition embeddings", "topic_margin": margin,
        "topic_rule": "similarity - mean topic similarity >= topic_margin",
        "partner_min_share": ZEROSHOT_MIN_SHARE,
    }, tags={}, metrics={"timing.total_seconds": time.perf_counter() - started})
    return run_id, [cv, seed]


def run_setfit(config: TrainConfig, split: Split, sample_pairs: int) -> tuple[str, dict]:
    figures = time_setfit(config, split, sample_pairs=sample_pairs)
    status = "feasible_not_run" if figures["feasible"] else "not_feasible"
    params = {k: v for k, v in figures.items() if not isinstance(v, float)}  # the settings of the measurement
    metrics = {f"timing.setfit.{k}": v for k, v in figures.items() if isinstance(v, float)}
    run_id = log_run(config, "setfit", split=split, params=params, metrics=metrics,
                     tags={"status": status, "setfit.estimate": json.dumps(_rounded(figures))})
    return run_id, figures | {"status": status}


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def run_pipeline(config: TrainConfig) -> tuple[str, list[Evaluation]]:
    result, recorded = run_training(config)
    return recorded.run_id or "", [result.cv, result.seed]


def _parse(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog, description="Score baselines on the pipeline's folds and log them to MLflow.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(DEFAULT_ONLY),
                        help=f"comma-separated, among {', '.join(CHOICES)} (default: {','.join(DEFAULT_ONLY)})")
    parser.add_argument("--config", type=Path, help="YAML file of settings (see configs/train.yaml)")
    parser.add_argument("--experiment", help="MLflow experiment (default: the config's, 'newsclf')")
    parser.add_argument("--tfidf-C", type=float, default=TFIDF_C, dest="tfidf_C")
    parser.add_argument("--label-prefix", default=LABEL_PREFIX, choices=["query: ", "passage: "],
                        help="prefix of the label definitions in the zero-shot baseline")
    parser.add_argument("--topic-margin", type=float, default=TOPIC_MARGIN)
    parser.add_argument("--setfit-pairs", type=int, default=32, help="contrastive pairs to time (after a warm-up)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(CHOICES))
    if unknown or not args.only:
        parser.error(f"--only takes names among {', '.join(CHOICES)}; got {', '.join(unknown) or 'nothing'}")
    if args.tfidf_C <= 0 or args.setfit_pairs < 2 or not math.isfinite(args.topic_margin):
        parser.error("--tfidf-C must be > 0, --setfit-pairs >= 2, --topic-margin a number")
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parse(argv, prog)
    overrides = {"tracking": {"experiment": args.experiment}} if args.experiment else {}
    try:
        config = load_config(args.config, overrides)
        split = load_training_data(config)
    except (ConfigError, CorpusInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = f"{config.tracking.resolved_uri()}, experiment {config.tracking.experiment}"
    try:
        for name in args.only:
            print(f"\n== {name} ==", flush=True)
            if name == "tfidf":
                run_id, evaluations = run_tfidf(config, split, args.tfidf_C)
            elif name == "zeroshot":
                run_id, evaluations = run_zeroshot(config, split, args.label_prefix, args.topic_margin)
            elif name == "pipeline":
                run_id, evaluations = run_pipeline(config)
            else:
                run_id, figures = run_setfit(config, split, args.setfit_pairs)
                print(f"trainer: sentence-transformers {figures['trainer']}, {figures['loss']}, "
                      f"batch {figures['batch_size']}, max_seq_length {figures['max_seq_length']}, "
                      f"{figures['torch_threads']} threads")
                print(f"measured: {figures['timed_pairs']} pairs in {figures['measured_seconds']:.1f} s "
                      f"= {figures['seconds_per_pair']:.2f} s per pair")
                print(f"one fine-tuning on the {len(split.written)} written articles "
                      f"({figures['pairs_one_training']} pairs, {SETFIT_ITERATIONS} iterations): "
                      f"~{figures['minutes_one_training']:.0f} min "
                      f"(~{figures['minutes_one_training_1_iteration']:.0f} min with a single iteration); "
                      f"the {config.cv.folds}-fold protocol with the seed check: "
                      f"~{figures['minutes_cv_protocol']:.0f} min; budget {SETFIT_BUDGET_MINUTES:.0f} min "
                      f"-> {figures['status']}")
                print(f"MLflow run: {run_id} ({where})")
                continue
            print(format_table(evaluations))
            print(f"MLflow run: {run_id} ({where})")
    except EmbedderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
