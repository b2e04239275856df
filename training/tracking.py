"""The MLflow record of a training: params, data version, metrics, reports, the pyfunc model, the registry.

The caller opens the run (``start_run``: a plain training, a sweep's parent and children, a baseline) and this
module records into the active run; nothing here decides when a run begins or ends.

Champion rule (also in the README): a newly registered version takes the alias ``champion`` when
- there is no champion yet, or
- the champion was evaluated on another corpus (its dataset hash differs: its scores are not comparable,
  and the model trained on the current corpus wins), or
- its composite cross-validation score, the mean of sector macro-F1, topics micro-F1 and region macro-F1,
  is at least the champion's.
Otherwise the champion stays and the new version is only registered.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run

from newsclf.model_format import RegistryRecord, record_registration, save_model
from newsclf.pyfunc import log_pyfunc_model
from training.config import TrainConfig
from training.evaluation import write_reports
from training.paths import ROOT
from training.pipeline import TrainingResult

log = logging.getLogger(__name__)
CHAMPION = "champion"
COMPOSITE_METRICS = ("cv.sector.macro_f1", "cv.topics.micro_f1", "cv.region.macro_f1")


@dataclass(frozen=True)
class Recorded:
    """What recording a training produced: the model folder, the run, the registry outcome."""

    model_dir: Path
    run_id: str | None
    model_version: str | None
    promoted: bool | None
    reason: str


def composite_score(metrics: dict[str, float]) -> float:
    return sum(metrics[m] for m in COMPOSITE_METRICS) / len(COMPOSITE_METRICS)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: ``mlartifacts/`` beside the database.

    MLflow's own default is ``./mlruns`` under whatever the working directory happens to be, which scatters one
    store's models over the machine; other stores (a tracking server) decide for themselves (``None``).
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).absolute().parent / "mlartifacts").as_uri()


def use_experiment(config: TrainConfig) -> None:
    """Point MLflow at the config's store and experiment, creating the experiment where its store lives."""
    uri = config.tracking.resolved_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(config.tracking.experiment) is None:
        mlflow.create_experiment(config.tracking.experiment, artifact_location=artifact_location(uri))
    mlflow.set_experiment(config.tracking.experiment)


@contextmanager
def start_run(config: TrainConfig, *, run_name: str | None = None, nested: bool = False,
              tags: dict[str, str] | None = None) -> Iterator[Run]:
    """An MLflow run in the config's store and experiment; a nested one becomes a child of the active run."""
    use_experiment(config)
    with mlflow.start_run(run_name=run_name or config.run_name, nested=nested, tags=tags) as run:
        yield run


def flat_params(config: TrainConfig) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = str(value)

    walk("", config.model_dump(mode="json", exclude={"datasets", "models_dir"}))
    flat.pop("embedder.cache_dir", None)
    return flat


def save_training(result: TrainingResult, config: TrainConfig, run_id: str | None = None) -> Path:
    """The shipped model folder (the heads and their manifest)."""
    return save_model(result.predictor, config.models_dir, run_id=run_id, dataset_hash=result.data.data_hash,
                      counts=result.data.counts, metrics=result.metrics)


def write_training_reports(result: TrainingResult, model_dir: Path) -> list[Path]:
    """Confusion matrices and misclassified articles of both evaluations, beside the model (not inside the pyfunc)."""
    return write_reports(result.cv, model_dir / "reports") + write_reports(result.seed, model_dir / "reports")


def record_training(result: TrainingResult, config: TrainConfig, *, kind: str = "pipeline") -> Recorded:
    """Record ``result`` in the active MLflow run, save the model, log it as a pyfunc and apply the champion rule."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("record_training needs an active MLflow run (open one with tracking.start_run)")
    run_id = run.info.run_id
    data, heads = result.data, result.predictor.heads
    mlflow.log_params(flat_params(config) | {
        "dataset_hash": data.data_hash, "git_commit": git_commit(),
        "embedder_identity": result.predictor.embedder.identity,
        "n_articles": data.counts["n_articles"], "n_written": data.counts["n_written"],
        "n_seed_items": data.counts["n_seed_items"],
        "chosen.region_partner_weight": heads.region.partner_weight_,
        "chosen.partner_min_share": heads.partner_min_share,
        "chosen.partner_min_share_multilateral": heads.partner_min_share_multilateral,
        "chosen.sector_embedding_weight": heads.sector.weight_,
        "chosen.region_embedding_weight": heads.region.model_.weight_,
        "chosen.sector_temperature": heads.sector.temperature_,
        "chosen.region_temperature": heads.region.temperature_,
        "chosen.topic_thresholds": json.dumps(dict(zip(heads.topic_labels, map(float, heads.topics.thresholds_),
                                                       strict=True))),
        "chosen.topic_sentence_weights": json.dumps(dict(zip(heads.topic_labels,
                                                             map(float, heads.topics.sentence_weights_),
                                                             strict=True))),
    })
    mlflow.set_tags({"kind": kind, "dataset_hash": data.data_hash, "languages": json.dumps(data.counts["languages"])})
    model_dir = save_training(result, config, run_id)
    mlflow.log_metrics(result.metrics | {f"timing.{k}": v for k, v in result.timings.items()})
    name = config.tracking.registered_model if config.tracking.register_model else None
    info = log_pyfunc_model(result.predictor, model_dir, name)
    version = promoted = None
    reason = "registration disabled"
    if name:
        version = str(info.registered_model_version)
        client = MlflowClient(tracking_uri=config.tracking.resolved_uri())
        promoted, reason = promote_if_better(client, name, version, result.metrics, data.data_hash)
    manifest = record_registration(model_dir, RegistryRecord(
        tracking_uri=config.tracking.resolved_uri(), name=config.tracking.registered_model, version=version,
        champion=promoted, reason=reason))
    mlflow.log_dict(json.loads(manifest.to_json()), "manifest.json")
    for path in write_training_reports(result, model_dir):
        mlflow.log_artifact(str(path), artifact_path="reports")
    return Recorded(model_dir, run_id, version, promoted, reason)


def promote_if_better(client: MlflowClient, name: str, version: str, metrics: dict[str, float],
                      dataset_hash: str) -> tuple[bool, str]:
    """Apply the champion rule (module docstring); returns (promoted, reason)."""
    # Compared as recorded (4 decimals): a full-precision score against a rounded tag would lose a tie.
    score = round(composite_score(metrics), 4)
    client.set_model_version_tag(name, version, "composite_cv_score", f"{score:.4f}")
    client.set_model_version_tag(name, version, "dataset_hash", dataset_hash)
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None
    if current is None:
        reason = "no champion yet"
    elif current.tags.get("dataset_hash") != dataset_hash:
        reason = f"champion v{current.version} was evaluated on another corpus"
    elif score >= float(current.tags.get("composite_cv_score", "-1")):
        reason = f"composite CV {score:.4f} >= champion v{current.version}'s {current.tags['composite_cv_score']}"
    else:
        return False, (f"champion v{current.version} kept: composite CV {score:.4f} < "
                       f"{current.tags['composite_cv_score']}")
    client.set_registered_model_alias(name, CHAMPION, version)
    return True, reason


def set_alias(tracking_uri: str, name: str, version: str, alias: str = CHAMPION) -> None:
    """Promote (or roll back to) ``version`` by hand."""
    client = MlflowClient(tracking_uri=tracking_uri)
    client.get_model_version(name, version)  # fails loudly if the version does not exist
    client.set_registered_model_alias(name, alias, version)
