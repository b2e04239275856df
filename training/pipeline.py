"""A training as composable steps: load the data, embed it, evaluate honestly, fit the shipped model.

``train(config)`` chains them and returns everything measured; it touches neither MLflow nor the models folder.
Recording (``training.tracking``) and the commands (``train``, ``sweep``, ``baselines``) build on these steps.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from newsclf.embedding import Embedder
from newsclf.predictor import Predictor, prepare_documents
from training.config import TrainConfig
from training.corpus import load_corpus
from training.corpus_features import CorpusFeatures
from training.evaluation import Evaluation, cross_validate, real_text_check
from training.fit_pool import FitPool
from training.records import Article, corpus_files, dataset_hash
from training.validate_corpus import CorpusInvalid, Problem


@dataclass(frozen=True)
class TrainingData:
    """The validated corpus split as the protocol uses it, and its version."""

    articles: list[Article]
    written: list[Article]  # cross-validated, and the whole training set of the real-text check
    seeds: list[Article]  # real seed-derived items: scored by the real-text check only
    data_hash: str
    counts: dict = field(default_factory=dict)


@dataclass
class TrainingResult:
    data: TrainingData
    predictor: Predictor  # fitted on every labelled article: the model that ships
    cv: Evaluation
    seed: Evaluation
    timings: dict[str, float]

    @property
    def metrics(self) -> dict[str, float]:
        cv = {f"cv.{k}": v for k, v in self.cv.metrics.items()}
        return cv | {f"seed.{k}": v for k, v in self.seed.metrics.items()}


def load_training_data(config: TrainConfig) -> TrainingData:
    articles = load_corpus(config.datasets)
    written = [a for a in articles if a.source == "written"]
    # Exported corrections (source "feedback") train the shipped model but stay out of both evaluations, so
    # that cv.* and seed.* keep measuring the same thing from one training to the next.
    seeds = [a for a in articles if a.source in ("seed", "seed_teaser")]
    if len(written) < config.cv.folds * 2:
        raise CorpusInvalid([Problem("datasets", 0, "", "corpus", f"only {len(written)} written articles; "
                                     f"{config.cv.folds}-fold cross-validation needs at least {2 * config.cv.folds}")])
    counts = {
        "n_articles": len(articles), "n_written": len(written), "n_seed_items": len(seeds),
        "languages": dict(Counter(a.lang for a in articles)),
    }
    return TrainingData(articles, written, seeds, dataset_hash(corpus_files(config.datasets)), counts)


def embed_corpus(embedder: Embedder, data: TrainingData, config: TrainConfig) -> tuple[dict[str, float], np.ndarray]:
    """Load the embedder and embed every article (through the cache); returns the timings and the vectors."""
    t0 = time.perf_counter()
    _ = embedder.model  # build (first time) and load the embedder before timing the embedding itself
    timings = {"embedder_load_seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    vectors = embedder.encode(prepare_documents(data.articles, clean=config.clean))
    hits, misses = embedder.last_cache_stats
    timings["embed_seconds"] = time.perf_counter() - t0
    timings["embedded_new"] = float(misses)
    timings["embedding_cache_hits"] = float(hits)
    if misses:
        timings["embedding_articles_per_second"] = misses / timings["embed_seconds"]
    return timings, vectors


def evaluate_and_fit(data: TrainingData, embedder: Embedder, config: TrainConfig, *,
                     corpus: CorpusFeatures | None = None) -> tuple[Evaluation, Evaluation, Predictor]:
    """Grouped cross-validation on the written corpus and the real-text check (never scored on training data),
    then the model that ships, fitted on every labelled article: its scores are the ones measured here."""
    corpus = corpus or CorpusFeatures(data.articles, embedder, config)
    with FitPool(corpus, config) as pool:
        # The two largest fits first, then the folds: the workers stay busy while this process predicts.
        written_only, final = pool.submit(data.written), pool.submit(data.articles)
        cv = cross_validate(data.written, embedder, config, corpus=corpus, pool=pool)
        seed = real_text_check(Predictor(embedder, written_only.result(), clean=config.clean), data.seeds)
        return cv, seed, Predictor(embedder, final.result(), clean=config.clean)


def train(config: TrainConfig, *, embedder: Embedder | None = None) -> TrainingResult:
    started = time.perf_counter()
    data = load_training_data(config)
    embedder = embedder or Embedder(config.embedder)
    timings, vectors = embed_corpus(embedder, data, config)
    t0 = time.perf_counter()
    # Read once, shared by the seven fits; what each fit learns still comes from its own articles. The vectors
    # are passed on, not read again from the cache (which may be unusable: then nothing is embedded twice).
    corpus = CorpusFeatures(data.articles, embedder, config, embeddings=vectors)
    timings["features_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cv, seed, final = evaluate_and_fit(data, embedder, config, corpus=corpus)
    timings["fitting_seconds"] = time.perf_counter() - t0
    timings["fit_workers"] = float(config.workers)
    timings["total_seconds"] = time.perf_counter() - started
    return TrainingResult(data, final, cv, seed, timings)
