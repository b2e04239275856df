"""The model behind the API: found, verified and loaded once (in a background thread), then shared by requests.

Policy on a model that cannot be used (files that fail the sha256 check against the manifest, no model at all,
an MLflow URI that does not resolve): the service stays up, ``/healthz`` answers 200, ``/readyz`` and the
classify endpoints answer 503 with the reason, and the reason is logged at ERROR level. An orchestrator then
keeps sending traffic to the replicas that work (restarting would not repair the files) and the operator
reads why on ``/readyz`` or in the log. ``newsclf serve`` checks a local model before it starts listening
and exits with the message instead, which is what a person at a terminal wants.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import pycountry
from mlflow import MlflowClient

from newsclf.model_format import ModelIntegrityError, ModelManifest, load_model, newest_model
from newsclf.predictor import ArticleInput, Prediction, Predictor
from newsclf.pyfunc import download_model
from newsclf.taxonomy import taxonomy
from serving.metrics import Metrics
from serving.schemas import ModelInfo, ModelRef, Partner
from serving.settings import ServiceSettings, is_model_uri

log = logging.getLogger("serving")


class NoModel(RuntimeError):
    """There is no model to serve; the message says how to get one."""


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    manifest: ModelManifest
    ref: ModelRef
    source: str


def model_source(settings: ServiceSettings) -> str:
    """The folder or URI to load: the setting, else the newest trained model."""
    if settings.model:
        return settings.model
    folder = newest_model(settings.models_dir)
    if folder is None:
        raise NoModel(f"no trained model under {settings.models_dir}: run `newsclf train` (or `make run`, which "
                      "trains the default model when there is none), or set NEWSCLF_MODEL")
    return str(folder)


def _ref_from_manifest(manifest: ModelManifest) -> ModelRef:
    registry = manifest.registry
    if registry is not None and registry.version:
        return ModelRef(name=registry.name, version=str(registry.version), run_id=manifest.run_id)
    return ModelRef(name=manifest.name, version=manifest.name, run_id=manifest.run_id)


def _load_folder(folder: Path, settings: ServiceSettings, ref: ModelRef | None = None,
                 source: str | None = None) -> LoadedModel:
    predictor, manifest = load_model(folder, cache_dir=settings.embedding_cache_dir)
    if ref is None:
        ref = _ref_from_manifest(manifest)
    elif ref.run_id is None:
        ref = ref.model_copy(update={"run_id": manifest.run_id})
    return LoadedModel(predictor, manifest, ref, source or str(folder))


def _load_mlflow(uri: str, settings: ServiceSettings) -> LoadedModel:
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
    # The registered pyfunc carries the model folder: load it with the service's own cache folder.
    return _load_folder(download_model(uri, settings.tracking_uri), settings, ref, uri)


def load(settings: ServiceSettings) -> LoadedModel:
    source = model_source(settings)
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
        "topics": [{"label": t, "confidence": round(p, 4),
                    "evidence": [asdict(e) for e in prediction.topic_evidence.get(t, [])]}
                   for t, p in prediction.topics],
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

    def __init__(self, settings: ServiceSettings | None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.status = "starting"
        self.reason: str | None = "the service is starting"
        self.model: LoadedModel | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def ready(cls, model: LoadedModel, settings: ServiceSettings) -> Service:
        """A service around a model already loaded (an app factory's injection point)."""
        service = cls(settings)
        service.model = model
        service.status, service.reason = "ready", None
        service.metrics.ready.set(1)
        return service

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
            source = model_source(self.settings)
            self.reason = f"loading the model from {source}"
            log.info("loading the model from %s", source)
            model = load(self.settings)
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
            **m.ref.model_dump(), source=m.source, created_at=manifest.created_at.isoformat(),
            embedder={"identity": manifest.embedder.identity,
                      "config": manifest.embedder.config.model_dump(mode="json", exclude={"cache_dir"})},
            labels=manifest.labels.model_dump(), topic_thresholds=manifest.topic_thresholds,
            metrics=manifest.metrics, dataset_hash=manifest.dataset_hash,
            registry=manifest.registry.model_dump() if manifest.registry else None,
            features=manifest.features, topic_evidence=manifest.topic_evidence,
        )
