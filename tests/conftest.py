"""Shared fixtures. The expensive ones (the real embedder, a trained model) are built once per session.

The embedding cache under ``.cache/`` is shared with normal use, so a machine that has trained once
(or a second CI step) embeds nothing again.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

# Tests never reach a model hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# TestClient sends "Host: testserver"; the service's default answers localhost names only.
os.environ.setdefault("NEWSCLF_ALLOWED_HOSTS", "localhost,127.0.0.1,::1,testserver")

from newsclf.embedding import Embedder  # noqa: E402
from newsclf.model_format import load_model, save_model  # noqa: E402
from newsclf.predictor import Predictor  # noqa: E402
from newsclf.taxonomy import taxonomy  # noqa: E402
from training.config import TrainConfig, load_config  # noqa: E402
from training.corpus import load_corpus  # noqa: E402
from training.fitting import fit_predictor  # noqa: E402
from training.records import Article  # noqa: E402
from training.train import run_training  # noqa: E402

SMALL_MODEL_ARTICLES = 60


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(load_config().embedder, show_progress=False)


@pytest.fixture(scope="session")
def corpus_articles() -> list[Article]:
    """The bundled corpus, loaded (and validated) once."""
    return load_corpus()


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def train_config(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> TrainConfig:
    """The default configuration, writing its model and MLflow runs to temporary places."""
    return load_config(overrides={
        "models_dir": str(tmp_path_factory.mktemp("models")),
        "tracking": {"tracking_uri": tracking_uri, "experiment": "tests"},
    })


@pytest.fixture(scope="session")
def training_run(train_config: TrainConfig):
    """One real training on the bundled corpus (default settings), recorded in a temporary MLflow store:
    (``TrainingResult``, ``Recorded``)."""
    return run_training(train_config)


@pytest.fixture(scope="session")
def training_result(training_run):
    return training_run[0]


@pytest.fixture(scope="session")
def training_record(training_run):
    return training_run[1]


@pytest.fixture(scope="session")
def trained_model_dir(training_record) -> Path:
    return training_record.model_dir


@pytest.fixture(scope="session")
def predictor(trained_model_dir: Path, embedder: Embedder) -> Predictor:
    predictor, _manifest = load_model(trained_model_dir, embedder=embedder)
    return predictor


def covering_sample(articles: list[Article], n: int, per_label: int = 3) -> list[Article]:
    """``n`` written articles in which every sector, region and topic occurs (``per_label`` times where it can),
    so that a model fitted on them answers with every label of the taxonomy."""
    written = [a for a in articles if a.source == "written"]
    chosen: dict[str, Article] = {}
    counts: Counter[str] = Counter()
    tax = taxonomy()
    wanted = [("sector", s) for s in tax.sectors] + [("region", r) for r in tax.regions] + \
             [("topics", t) for t in tax.topics]
    for head, label in wanted:
        for a in written:
            if counts[f"{head}:{label}"] >= per_label:
                break
            has = label in a.topics if head == "topics" else getattr(a, head) == label
            if has and a.id not in chosen:
                chosen[a.id] = a
                counts.update([f"sector:{a.sector}", f"region:{a.region}", *(f"topics:{t}" for t in a.topics)])
    for a in written[::7]:
        if len(chosen) >= n:
            break
        chosen.setdefault(a.id, a)
    return list(chosen.values())  # coverage first: a few more than n when the labels need it


@pytest.fixture(scope="session")
def small_model_dir(embedder: Embedder, corpus_articles: list[Article],
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model, small and quick: the default pipeline (both views, the sentence model) fitted on 60 articles.

    Tests of the service's code use it, so they need no full training; the full model's behaviour is tested
    apart (test_model_behaviour.py) and served once (test_api.py, the registered champion).
    """
    config = load_config(overrides={"cv": {"inner_folds": 2}})
    articles = covering_sample(corpus_articles, SMALL_MODEL_ARTICLES)
    return save_model(fit_predictor(articles, embedder, config), tmp_path_factory.mktemp("small-model"),
                      dataset_hash="small-test-model", counts={"n_articles": len(articles)})
