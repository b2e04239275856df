"""The MLflow record of a training: params, data version, metrics, reports, the pyfunc model, the registry.

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
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from training.paths import ROOT

log = logging.getLogger(__name__)
CHAMPION = "champion"
COMPOSITE_METRICS = ("cv.sector.macro_f1", "cv.topics.micro_f1", "cv.region.macro_f1")
EXAMPLE_ARTICLE = {
    "title": "Le Vietnam et le Laos renforcent leur coopération contre le trafic de drogue",
    "text": (
        "Hanoï (VNA) – Les ministères vietnamien et laotien de la Sécurité publique ont convenu jeudi "
        "d'intensifier l'échange d'informations et les patrouilles conjointes le long de la frontière pour "
        "lutter contre le trafic de stupéfiants et la traite des êtres humains. – VNA"
    ),
}


def composite_score(metrics: dict[str, float]) -> float:
    return sum(metrics[m] for m in COMPOSITE_METRICS) / len(COMPOSITE_METRICS)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class NewsClassifierModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: a DataFrame with ``text`` (and optional ``title``) in, one row of labels per article."""

    def load_context(self, context) -> None:
        from training.model_store import load_model

        self.predictor, self.manifest = load_model(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame({"text": list(model_input)})
        from training.predictor import ArticleInput

        titles = frame["title"] if "title" in frame else [None] * len(frame)
        articles = [ArticleInput(text=str(t), title=(str(h) if isinstance(h, str) and h else None))
                    for t, h in zip(frame["text"], titles, strict=True)]
        return predictions_frame(self.predictor.predict(articles))


def predictions_frame(predictions) -> pd.DataFrame:
    return pd.DataFrame([{
        "sector": p.sector.label, "sector_confidence": p.sector.confidence,
        "topics": ",".join(t for t, _ in p.topics), "region": p.region.label,
        "region_confidence": p.region.confidence, "partners": ",".join(p.partners), "language": p.language,
        "result_json": json.dumps(p.to_dict(), ensure_ascii=False),
    } for p in predictions])


def log_pyfunc_model(model_dir: Path, example_output: pd.DataFrame, registered_name: str | None):
    example_input = pd.DataFrame([EXAMPLE_ARTICLE])
    signature = infer_signature(example_input, example_output)
    requirements = _requirements()
    return mlflow.pyfunc.log_model(
        name="model", python_model=NewsClassifierModel(), artifacts={"model_dir": str(model_dir)},
        code_paths=[str(ROOT / "training")], signature=signature, input_example=example_input,
        pip_requirements=requirements, registered_model_name=registered_name,
    )


def _requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def promote_if_better(client: MlflowClient, name: str, version: str, metrics: dict[str, float],
                      dataset_hash: str) -> tuple[bool, str]:
    """Apply the champion rule (module docstring); returns (promoted, reason)."""
    score = composite_score(metrics)
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
