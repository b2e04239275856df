"""The model behind the API: found, verified and loaded once (in a background thread), then shared by requests.

Policy on a model that cannot be used (files that fail the sha256 check against the manifest, no model at all,
an MLflow URI that does not resolve): the service stays up, ``/healthz`` answers 200, ``/readyz`` and the
classify endpoints answer 503 with the reason, and the reason is logged at ERROR level. An orchestrator then
keeps sending traffic to the replicas that work (restarting would not repair the files) and the operator
reads why on ``/readyz`` or in the log. ``python -m serving`` checks a local model before it starts listening
and exits with the message instead, which is what a person at a terminal wants.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pycountry

from serving.metrics import Metrics
from serving.schemas import ModelInfo, ModelRef, Partner
from serving.settings import ServiceSettings, is_model_uri
from training.config import EmbedderConfig
from training.embedding import Embedder
from training.model_store import ModelIntegrityError, load_model, newest_model, read_manifest
from training.paths import CACHE, MODELS
from training.predictor import ArticleInput, Prediction, Predictor
from training.taxonomy import taxonomy

log = logging.getLogger("serving")


class NoModel(RuntimeError):
    """There is no model to serve; the message says how to get one."""


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    manifest: dict
    ref: ModelRef
    source: str


def model_source(settings: ServiceSettings, models_dir: Path = MODELS) -> str:
    """The folder or URI to load: the setting, else the newest trained model."""
    if settings.model:
        return settings.model
    folder = newest_model(models_dir)
    if folder is None:
        raise NoModel(f"no trained model under {models_dir}: run `python -m serving` (it trains the default model "
                      "when there is none) or `python -m training.train`, or set NEWSCLF_MODEL")
    return str(folder)


def _embedder(manifest: dict, cache_dir: Path) -> Embedder:
    try:
        config = EmbedderConfig.model_validate({**manifest["embedder"]["config"], "cache_dir": cache_dir})
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelIntegrityError(f"the manifest's embedder settings are unusable ({exc}); retrain the model") from exc
    return Embedder(config, show_progress=False)


def _ref_from_manifest(manifest: dict) -> ModelRef:
    registry = manifest.get("registry") or {}
    if registry.get("version"):
        return ModelRef(name=registry["name"], version=str(registry["version"]), run_id=manifest.get("run_id"))
    return ModelRef(name=manifest.get("name", "unknown"), version=manifest.get("name", "unknown"),
                    run_id=manifest.get("run_id"))


def _load_folder(folder: Path, settings: ServiceSettings) -> LoadedModel:
    manifest = read_manifest(folder)
    embedder = _embedder(manifest, settings.embedding_cache_dir or CACHE)
    predictor, manifest = load_model(folder, embedder=embedder)
    return LoadedModel(predictor, manifest, _ref_from_manifest(manifest), str(folder))


def _load_mlflow(uri: str, settings: ServiceSettings) -> LoadedModel:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    ref = None
    if uri.startswith("models:/"):
        # Pin an alias to its version first, so the name and version reported are those of what was loaded.
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        spec = uri.removeprefix("models:/")
        version = None
        if "@" in spec:
            name, alias = spec.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        elif spec.count("/") == 1 and spec.split("/")[1].isdigit():
            version = client.get_model_version(*spec.split("/"))
        if version is not None:
            uri = f"models:/{version.name}/{version.version}"
            ref = ModelRef(name=version.name, version=str(version.version), run_id=version.run_id)
    wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    predictor, manifest = wrapper.predictor, wrapper.manifest
    if settings.embedding_cache_dir is not None:
        predictor = Predictor(_embedder(manifest, settings.embedding_cache_dir), predictor.heads,
                              clean=predictor.clean)
        if predictor.embedder.identity != manifest["embedder"]["identity"]:
            raise ModelIntegrityError(f"the embedder under {settings.embedding_cache_dir} is not the one the model "
                                      "was trained with")
    else:
        predictor.embedder.show_progress = False  # progress bars are for training runs, not server logs
    if ref is None:
        ref = _ref_from_manifest(manifest)
    elif ref.run_id is None:
        ref = ref.model_copy(update={"run_id": manifest.get("run_id")})
    return LoadedModel(predictor, manifest, ref, uri)


def load(settings: ServiceSettings, models_dir: Path = MODELS) -> LoadedModel:
    source = model_source(settings, models_dir)
    if is_model_uri(source):
        return _load_mlflow(source, settings)
    return _load_folder(Path(source), settings)


def _integrity_error(exc: BaseException) -> ModelIntegrityError | None:
    # MLflow may wrap what the pyfunc's load_context raised.
    while exc is not None:
        if isinstance(exc, ModelIntegrityError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@cache
def partner(code: str) -> Partner:
    country = pycountry.countries.get(alpha_2=code)
    name = (getattr(country, "common_name", None) or country.name) if country else code
    return Partner(code=code, name=name, region=taxonomy().region_of_country(code))


def to_result(prediction: Prediction, ref: ModelRef) -> dict:
    """The API's view of a prediction (``Classification`` fields)."""
    return {
        "sector": {"label": prediction.sector.label, "confidence": prediction.sector.confidence,
                   "scores": prediction.sector.scores},
        # Rounded like topic_scores, so the two never disagree in the last digits.
        "topics": [{"label": t, "confidence": round(p, 4)} for t, p in prediction.topics],
        "topic_scores": prediction.topic_scores,
        "region": {"label": prediction.region.label, "confidence": prediction.region.confidence,
                   "scores": prediction.region.scores},
        "partners": [partner(code).model_dump() for code in prediction.partners],
        "language": prediction.language,
        "model": ref.model_dump(),
        "warnings": list(prediction.warnings),
    }


class Service:
    """State shared by the requests of one app: settings, metrics, and the model once it is loaded."""

    def __init__(self, settings: ServiceSettings | None, models_dir: Path = MODELS) -> None:
        self.settings = settings
        self.models_dir = models_dir
        self.metrics = Metrics()
        self.status = "starting"
        self.reason: str | None = "the service is starting"
        self.model: LoadedModel | None = None
        self._thread: threading.Thread | None = None

    def start(self, settings: ServiceSettings) -> None:
        """Begin loading the model in a background thread: /healthz answers at once, /readyz once loaded."""
        self.settings = settings
        if settings.torch_threads is not None:
            import torch

            torch.set_num_threads(settings.torch_threads)  # process-wide, as the setting says
        self.status, self.reason = "loading", "loading the model"
        self._thread = threading.Thread(target=self._load, name="newsclf-model-loader", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loading attempt is over; True when the model is ready."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status == "ready"

    def _load(self) -> None:
        assert self.settings is not None
        started = time.perf_counter()
        try:
            source = model_source(self.settings, self.models_dir)
            self.reason = f"loading the model from {source}"
            log.info("loading the model from %s", source)
            model = load(self.settings, self.models_dir)
            _ = model.predictor.embedder.identity  # loads the embedder's weights now, not on the first request
        except NoModel as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure leaves the service unready with its reason
            integrity = _integrity_error(exc)
            if integrity is not None:
                self._fail(f"model refused: {integrity}")
            else:
                self._fail(f"could not load the model: {type(exc).__name__}: {exc}", exc)
        else:
            self.model = model
            self.status, self.reason = "ready", None
            self.metrics.ready.set(1)
            self.metrics.model_info.labels(model.ref.name, model.ref.version, model.ref.run_id or "").set(1)
            log.info("model ready: %s version %s (run %s) from %s, loaded in %.1f s", model.ref.name,
                     model.ref.version, model.ref.run_id, model.source, time.perf_counter() - started)

    def _fail(self, reason: str, exc: BaseException | None = None) -> None:
        self.status, self.reason = "failed", reason
        self.metrics.ready.set(0)
        log.error("the service will answer 503 until restarted with a usable model: %s", reason, exc_info=exc)

    def predict(self, model: LoadedModel, articles: list[ArticleInput]) -> list[Prediction]:
        """``Predictor.predict`` (blocking: run it in a worker thread). The embedder serialises forward passes
        and tokenizer calls itself, so concurrent requests are safe."""
        return model.predictor.predict(articles)

    @property
    def max_body_bytes(self) -> int:
        if self.settings is not None:
            return self.settings.max_body_bytes
        return ServiceSettings.model_fields["max_body_bytes"].default

    def info(self) -> ModelInfo:
        assert self.model is not None
        m, manifest = self.model, self.model.manifest
        return ModelInfo(
            **m.ref.model_dump(), source=m.source, created_at=manifest.get("created_at"),
            embedder={"identity": manifest["embedder"]["identity"], "config": manifest["embedder"]["config"]},
            labels=manifest["labels"], topic_thresholds=manifest.get("topic_thresholds", {}),
            metrics=manifest.get("metrics", {}), dataset_hash=manifest.get("dataset_hash"),
            registry=manifest.get("registry"),
        )
