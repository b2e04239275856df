"""Shared fixtures. The expensive ones (the real embedder, a trained model) are built once per session.

The embedding cache under ``.cache/`` is shared with normal use, so a machine that has trained once
(or a second CI step) embeds nothing again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub: fail fast instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.config import TrainConfig, load_config
from training.embedding import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(load_config().embedder, show_progress=False)


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
def training_result(train_config: TrainConfig):
    """One real training on the bundled corpus (default settings), recorded in a temporary MLflow store."""
    from training.train import train

    return train(train_config)


@pytest.fixture(scope="session")
def trained_model_dir(training_result) -> Path:
    return training_result.model_dir


@pytest.fixture(scope="session")
def predictor(trained_model_dir: Path, embedder: Embedder):
    from training.model_store import load_model

    predictor, _manifest = load_model(trained_model_dir, embedder=embedder)
    return predictor
