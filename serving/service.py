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
import re
import threading
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import pycountry

from newsclf import embedding_cache
from newsclf.model_format import ModelIntegrityError, ModelManifest, load_model, newest_model
from newsclf.predictor import ArticleInput, Prediction, Predictor
from newsclf.pyfunc import download_model, registered_version
from newsclf.taxonomy import taxonomy
from serving.dispatcher import InferenceDispatcher
from serving.metrics import Metrics
from serving.schemas import ModelInfo, ModelRef, Partner
from serving.settings import (
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TITLE_CHARS,
    ServiceSettings,
    body_bytes_for,
    is_model_uri,
    split_list,
)

log = logging.getLogger("serving")


# An absolute path ("/srv/app/models/x/manifest.json"); not the "/" of a URI scheme ("models:/", "sqlite:///").
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/(?:[^\s'\"/]+/)*([^\s'\"/]+)")


def public(text: str | None) -> str | None:
    """``text`` with every absolute path cut to its last part: answers never reveal the server's layout."""
    return None if text is None else _ABSOLUTE_PATH.sub(r"\1", text)


FEEDBACK_VALUE_ARTICLES = 32


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
    # Pin an alias to its version first, so the name and version reported are those of what was loaded.
    version = registered_version(uri, settings.tracking_uri)
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


class ReloadError(RuntimeError):
    """A reload that did not happen; ``status`` for the answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def public_source(model: LoadedModel) -> str:
    """Where the model came from, without the server's paths: the registry URI, or the model folder's name."""
    if is_model_uri(model.source) and not model.source.startswith("file:"):
        return model.source
    return f"models/{Path(model.source.rstrip('/')).name}"


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
        self.dispatcher: InferenceDispatcher | None = None
        self._reload_lock = threading.Lock()
        if settings is not None:
            self._configure(settings)

    def _configure(self, settings: ServiceSettings) -> None:
        self.settings = settings
        embedding_cache.set_size_limit(settings.embedding_cache_max_bytes)
        self.open()

    def open(self) -> None:
        """Start the dispatcher, or a new one after ``close``: an app's lifespan may run more than once (a test
        client enters it on each use), and a stopped dispatcher would leave requests waiting for ever."""
        settings = self.settings
        if settings is not None and (self.dispatcher is None or self.dispatcher.stopped):
            self.dispatcher = InferenceDispatcher(
                self.predict, max_in_flight=settings.max_in_flight, max_batch=settings.coalesce_max_batch,
                window_s=settings.coalesce_window_ms / 1000, max_wait_s=settings.max_queue_wait_s,
                workers=settings.inference_workers)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()

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
        self._configure(settings)
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
        """``Predictor.predict`` (blocking: the dispatcher's worker thread calls it). The embedder serialises
        forward passes and tokenizer calls itself, so concurrent callers are safe."""
        return model.predictor.predict(articles)

    def cache_state(self) -> str | None:
        """Why the embedding cache is off (the service still answers, more slowly), or None when it works."""
        if self.model is None:
            return None
        cache = embedding_cache.cache_for(self.model.predictor.embedder.config.cache_dir / "embeddings")
        return cache.disabled

    def reload(self, version: str | None) -> tuple[LoadedModel, LoadedModel]:
        """Load the configured model again (or ``version`` of the registered model), verify it, swap it in.

        Blocking (run it in a thread). Requests already queued keep the model they were admitted with; a failed
        load leaves the current model serving and raises ``ReloadError`` with the reason.
        """
        assert self.settings is not None
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadError(409, "a reload is already running: wait for it to finish")
        try:
            old = self.model
            settings = self.settings
            if version is not None:
                name = old.ref.name if old is not None else "newsclf"
                source = model_source(settings)
                if not is_model_uri(source):
                    raise ReloadError(422, "the service was started from a model folder, not the registry: "
                                      "a version can only be chosen when NEWSCLF_MODEL is a models:/ URI")
                settings = settings.model_copy(update={"model": f"models:/{name}/{version}"})
            try:
                new = load(settings)
                _ = new.predictor.embedder.identity  # the weights load now, not on the first request
            except NoModel as exc:
                raise ReloadError(409, f"reload failed, still serving the previous model: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - the reason goes back to the operator
                integrity = _integrity_error(exc)
                why = f"model refused: {integrity}" if integrity else f"{type(exc).__name__}: {exc}"
                log.error("reload failed, still serving the previous model: %s", why)
                raise ReloadError(409, f"reload failed, still serving the previous model: {why}") from None
            self.model = new  # one assignment: requests admitted from now on get the new model
            self.status, self.reason = "ready", None
            self.metrics.ready.set(1)
            if old is not None:
                self.metrics.model_info.labels(old.ref.name, old.ref.version, old.ref.run_id or "").set(0)
            self.metrics.model_info.labels(new.ref.name, new.ref.version, new.ref.run_id or "").set(1)
            log.info("model reloaded: %s version %s (run %s)", new.ref.name, new.ref.version, new.ref.run_id)
            return old, new
        finally:
            self._reload_lock.release()

    @property
    def max_body_bytes(self) -> int:
        if self.settings is not None:
            return self.settings.max_body_bytes
        return ServiceSettings.model_fields["max_body_bytes"].default

    def max_body_bytes_for(self, path: str) -> int:
        """A route's body limit: one article's worth for /v1/classify, a full batch's for the others."""
        if path == "/v1/classify":
            s = self.settings
            one = body_bytes_for(1, s.max_text_chars, s.max_title_chars) if s else body_bytes_for(
                1, DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_TITLE_CHARS)
            return min(one, self.max_body_bytes)
        return self.max_body_bytes

    @property
    def body_timeout_s(self) -> float:
        return self.settings.body_timeout_s if self.settings else ServiceSettings.model_fields["body_timeout_s"].default

    @property
    def allowed_hosts(self) -> list[str]:
        if self.settings is None:
            return split_list(ServiceSettings.model_fields["allowed_hosts"].default)
        return self.settings.allowed_host_list

    def max_items_for(self, path: str) -> int:
        """Most articles a body of this route may hold (bounds the work of parsing it)."""
        if path == "/v1/classify/batch":
            return self.settings.max_batch_items if self.settings else DEFAULT_MAX_BATCH_ITEMS
        if path == "/v1/feedback":
            # One article, but a correction carries label lists, evidence spans and the predicted labels: about
            # 120 values at most for the whole taxonomy; the budget of 32 articles (272 values) covers it.
            return FEEDBACK_VALUE_ARTICLES
        return 1

    def info(self) -> ModelInfo:
        assert self.model is not None
        m, manifest = self.model, self.model.manifest
        return ModelInfo(
            **m.ref.model_dump(), source=public_source(m), created_at=manifest.created_at.isoformat(),
            embedder={"identity": manifest.embedder.identity,
                      "config": manifest.embedder.config.model_dump(mode="json", exclude={"cache_dir"})},
            labels=manifest.labels.model_dump(), topic_thresholds=manifest.topic_thresholds,
            metrics=manifest.metrics, dataset_hash=manifest.dataset_hash,
            registry=manifest.registry.model_dump() if manifest.registry else None,
            features=manifest.features, topic_evidence=manifest.topic_evidence,
        )
