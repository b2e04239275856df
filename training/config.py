"""Typed training configuration: a YAML file parsed into frozen models that reject unknown keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsclf.embedding import EmbedderConfig
from newsclf.heads import DEFAULT_PARTNER_WEIGHTS, DEFAULT_THRESHOLDS
from training.paths import CACHE, DATASETS, DEFAULT_TRACKING_URI, MODELS


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LinearHeadConfig(_Strict):
    C: float = Field(4.0, gt=0)  # of the embedding view
    # TF-IDF vectors are sparse and many: less regularisation than the dense embeddings.
    C_lexical: float = Field(10.0, gt=0)
    class_weight: Literal["balanced"] | None = "balanced"


class TopicsConfig(LinearHeadConfig):
    # Candidate decision thresholds; each topic gets the one with the best cross-validated F1.
    threshold_grid: tuple[float, ...] = DEFAULT_THRESHOLDS
    # A sentence-level model trained on the evidence sentences, mixed into each topic's score by inner CV.
    sentence_model: bool = True
    sentence_C: float = Field(4.0, gt=0)


class RegionConfig(LinearHeadConfig):
    # Weight of the gazetteer's region (of the most prominent country) mixed into the classifier's
    # probabilities; chosen by inner cross-validation, 0.0 (classifier alone) unless mixing scores better.
    partner_weight_grid: tuple[float, ...] = DEFAULT_PARTNER_WEIGHTS


class PartnersConfig(_Strict):
    # A country is a partner when at least this share as prominent as the top one; chosen by inner CV.
    min_share_grid: tuple[float, ...] = (0.2, 0.35, 0.5, 0.75, 1.0)


class CrossValidationConfig(_Strict):
    folds: int = Field(5, ge=2, le=20)
    inner_folds: int = Field(3, ge=2, le=10)
    seed: int = 13


class TrackingConfig(_Strict):
    # None: $MLFLOW_TRACKING_URI if set, else the SQLite file in the repository.
    tracking_uri: str | None = None
    experiment: str = "newsclf"
    registered_model: str = "newsclf"
    register_model: bool = True
    # False: a training writes its model folder and no MLflow run (tests, quick experiments).
    enabled: bool = True

    def resolved_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))


class TrainConfig(_Strict):
    datasets: Path = DATASETS
    models_dir: Path = MODELS
    clean: bool = True
    # What the heads read: the sentence embedding, the word and character TF-IDF, or both blended by inner CV.
    features: Literal["embedding", "lexical", "hybrid"] = "hybrid"
    # Temperature-scale every head's probabilities on inner out-of-fold scores (confidence that means what it says).
    calibrate: bool = True
    embedder: EmbedderConfig = EmbedderConfig(cache_dir=CACHE)
    sector: LinearHeadConfig = LinearHeadConfig()
    topics: TopicsConfig = TopicsConfig()
    region: RegionConfig = RegionConfig()
    partners: PartnersConfig = PartnersConfig()
    cv: CrossValidationConfig = CrossValidationConfig()
    tracking: TrackingConfig = TrackingConfig()
    run_name: str | None = None
    # Worker processes for the fits of a training (cross-validation folds, real-text check, shipped model), which
    # are independent; 1 fits them one after another in this process. The results do not depend on it.
    # Default: the cores this process may use, at most 8.
    workers: int = Field(default_factory=default_workers, ge=1, le=64)

    @property
    def views(self) -> tuple[str, ...]:
        """The views the heads read (``features`` spelled out)."""
        return {"embedding": ("embedding",), "lexical": ("lexical",), "hybrid": ("embedding", "lexical")}[self.features]

    @model_validator(mode="before")
    @classmethod
    def _checkout_cache(cls, data):
        # The core's default cache is per user (~/.cache/newsclf); a training in the checkout shares the
        # checkout's .cache with the service unless the configuration names another folder.
        if isinstance(data, dict) and isinstance(data.get("embedder"), dict) and "cache_dir" not in data["embedder"]:
            data = {**data, "embedder": {**data["embedder"], "cache_dir": CACHE}}
        return data

    @field_validator("datasets")
    @classmethod
    def _datasets_exist(cls, path: Path) -> Path:
        if not path.is_dir() or not (any(path.glob("*.jsonl")) or any(path.glob("written/*.jsonl"))):
            raise ValueError(f"{path} is not a datasets folder (no *.jsonl corpus files in it or in written/)")
        return path


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says what to fix."""


def load_config(path: Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then overrides (nested dicts), validated together."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings")
    data = _merge(data, overrides or {})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}:\n" + "\n".join(lines)) from exc


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
