"""The HTTP API of the news classifier.

    uvicorn serving.app:app          # the default model (settings from NEWSCLF_* variables, read at start-up)
    newsclf serve                    # the same (python -m serving too); `make run` trains first when needed

``create_app(settings)`` builds an app around any model (tests); nothing is loaded at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Annotated

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from newsclf.explanation import explain as explain_predictions
from newsclf.predictor import ArticleInput
from serving.auth import require_admin_key, require_api_key
from serving.dispatcher import ClientGone, Overloaded, Stopped, wait_disconnect
from serving.docs import install_docs
from serving.errors import MAX_FIELDS, InputError, ServiceError, install_error_handlers
from serving.feedback import include_feedback
from serving.json_body import BoundedJSONRoute
from serving.middleware import BodyGuardMiddleware, HostGuardMiddleware, ObserveMiddleware
from serving.page import include_page
from serving.schemas import (
    ArticleRequest,
    BatchRequest,
    BatchResponse,
    ClassifyResponse,
    ErrorResponse,
    FieldProblem,
    Health,
    ModelInfo,
    Readiness,
    ReloadRequest,
    ReloadResult,
)
from serving.service import LoadedModel, ReloadError, Service, public, to_result
from serving.settings import ServiceSettings, SettingsError, load_settings

log = logging.getLogger("serving")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ERRORS = {
    400: {"model": ErrorResponse, "description": "Body is not valid JSON, not UTF-8, or repeats a key in an object; "
          "or the Host header is not one of NEWSCLF_ALLOWED_HOSTS"},
    401: {"model": ErrorResponse, "description": "API keys are configured and the request has no valid "
          "`Authorization: Bearer <key>`"},
    408: {"model": ErrorResponse, "description": "The body did not arrive within NEWSCLF_BODY_TIMEOUT_S"},
    413: {"model": ErrorResponse, "description": "Body larger than this route's limit (one article for "
          "/v1/classify, a full batch for /v1/classify/batch; NEWSCLF_MAX_BODY_BYTES at most)"},
    415: {"model": ErrorResponse, "description": "Body not sent as application/json"},
    422: {"model": ErrorResponse, "description": "A field is missing, of the wrong type, blank or over a limit; "
          "or a query parameter the route does not take; "
          "or the body holds more items than a batch may (at most 20 problems are listed, the message gives "
          "the total)"},
    503: {"model": ErrorResponse, "description": "The model is not loaded (yet; see /readyz), or the service is "
          "busy: more than NEWSCLF_MAX_IN_FLIGHT articles are being classified. Then the `Retry-After` header says "
          "in how many seconds to try again", "headers": {"Retry-After": {
              "description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}},
}
_BATCH_ERRORS = {**_ERRORS, 409: {"model": ErrorResponse, "description": "Two articles of the batch have the same "
                                  "id (a rule the JSON schema cannot state)"}}
_MODEL_ERRORS = {k: _ERRORS[k] for k in (400, 401, 503)}
_ADMIN_ERRORS = {
    **{k: _ERRORS[k] for k in (400, 401, 408, 413, 415, 422)},
    403: {"model": ErrorResponse, "description": "Admin routes are disabled (NEWSCLF_ADMIN_KEYS is empty)"},
    409: {"model": ErrorResponse, "description": "The reload failed (the previous model keeps serving; the "
          "message says why) or another reload is running"},
}


def _version() -> str:
    try:
        return metadata.version("newsclf")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def configure_logging(level: str) -> None:
    """Give the service's logger a handler when nobody configured logging (as under ``uvicorn serving.app:app``)."""
    logger = logging.getLogger("serving")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        logger.addHandler(handler)


def _ready_model(service: Service) -> LoadedModel:
    if service.model is None:
        headers = {"Retry-After": "5"} if service.status in ("starting", "loading") else None
        raise ServiceError(503, "model_not_ready", f"the model is not ready: {public(service.reason)}",
                           headers=headers)
    return service.model


def _shutting_down() -> ServiceError:
    # Admission and queueing can each meet a stopped dispatcher: one answer for both.
    return ServiceError(503, "shutting_down", "the service is shutting down: retry in a moment",
                        headers={"Retry-After": "1"})


async def _predict(request: Request, service: Service, model: LoadedModel, inputs: list[ArticleInput]) -> list:
    """Predictions through the service's dispatcher: refused at once when it is full, dropped if the client leaves."""
    dispatcher = service.dispatcher
    assert dispatcher is not None
    try:
        dispatcher.admit(len(inputs))
    except Stopped:
        raise _shutting_down() from None
    except Overloaded as exc:
        service.metrics.overloaded.inc()
        raise ServiceError(503, "overloaded", f"the service is busy ({exc}): retry in {exc.retry_after} s",
                           headers={"Retry-After": str(exc.retry_after)}) from None
    # The body has been read: the next message from the server can only be the client's disconnection.
    disconnected = asyncio.ensure_future(wait_disconnect(request.receive))
    try:
        return await dispatcher.submit(model, inputs, disconnected)
    except Stopped:
        raise _shutting_down() from None
    except ClientGone:
        service.metrics.client_gone.inc()
        raise ServiceError(499, "client_closed_request", "the client disconnected before the answer was ready") \
            from None
    finally:
        disconnected.cancel()


def _limit_problems(article: ArticleRequest, settings: ServiceSettings, prefix: str = "") -> list[FieldProblem]:
    problems = []
    if len(article.text) > settings.max_text_chars:
        problems.append(FieldProblem(
            field=f"{prefix}text",
            problem=f"has {len(article.text)} characters; the limit is {settings.max_text_chars} "
                    "(NEWSCLF_MAX_TEXT_CHARS): send the article without appended material, or its beginning",
        ))
    if article.title is not None and len(article.title) > settings.max_title_chars:
        problems.append(FieldProblem(
            field=f"{prefix}title",
            problem=f"has {len(article.title)} characters; the limit is {settings.max_title_chars} "
                    "(NEWSCLF_MAX_TITLE_CHARS): send the headline only",
        ))
    return problems


def _batch_problems(body: BatchRequest, settings: ServiceSettings) -> tuple[list[FieldProblem], list[FieldProblem]]:
    """(fields over a limit, ids repeated): a schema can state the limits but not that ids differ, hence a 409."""
    problems, repeated = [], []
    if len(body.articles) > settings.max_batch_items:
        problems.append(FieldProblem(
            field="articles",
            problem=f"has {len(body.articles)} articles; the limit is {settings.max_batch_items} per request "
                    "(NEWSCLF_MAX_BATCH_ITEMS): split the batch",
        ))
    first: dict[str, int] = {}
    for i, article in enumerate(body.articles):
        if article.id in first:
            repeated.append(FieldProblem(
                field=f"articles[{i}].id",
                problem=f"repeats the id of articles[{first[article.id]}]: ids must be unique within a batch",
            ))
        first.setdefault(article.id, i)
        problems += _limit_problems(article, settings, f"articles[{i}].")
    return problems, repeated


def _log_labels(results: list[dict]) -> str:
    """What the access log says about the labels (never the text)."""
    if len(results) == 1:
        r = results[0]
        topics = ",".join(t["label"] for t in r["topics"]) or "-"
        partners = ",".join(p["code"] for p in r["partners"]) or "-"
        return (f"sector={r['sector']['label']}:{r['sector']['confidence']:.2f} "
                f"region={r['region']['label']}:{r['region']['confidence']:.2f} topics={topics} "
                f"partners={partners} language={r['language']} warnings={len(r['warnings'])}")
    sectors = Counter(r["sector"]["label"] for r in results)
    warned = sum(1 for r in results if r["warnings"])
    return (f"articles={len(results)} sectors=" + ",".join(f"{k}:{v}" for k, v in sectors.most_common())
            + f" warned={warned}")


def get_service(request: Request) -> Service:
    """The app's service (settings, metrics, the loaded model): the routes' one dependency, overridable in tests."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def create_app(settings: ServiceSettings | None = None, *, service: Service | None = None) -> FastAPI:
    """The API around the model ``settings`` name; ``None`` reads NEWSCLF_* variables when the app starts.

    ``service``: one built elsewhere, e.g. ``Service.ready(model, settings)`` around a model already in memory
    (tests); the app then loads nothing.
    """
    service = service or Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            resolved = service.settings or load_settings()
        except SettingsError as exc:
            configure_logging("info")
            log.critical("%s", exc)
            raise SettingsError(str(exc)) from None
        configure_logging(resolved.log_level)
        if service.model is None:
            service.start(resolved)
        service.open()
        yield
        service.close()

    app = FastAPI(
        title="newsclf",
        version=_version(),
        summary="Sector, security topics, region and partner countries of Vietnam's international-cooperation "
                "news (French, English, Vietnamese).",
        description="Errors share one shape: `{\"error\": {\"code\", \"message\", \"fields\": [{\"field\", "
                    "\"problem\"}], \"request_id\"}}`. Every response carries an `X-Request-ID` header (the one "
                    "sent, or a new one).",
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_docs: no CDN, so /docs works offline
        redoc_url=None,
    )
    app.router.route_class = BoundedJSONRoute
    app.state.service = service
    install_error_handlers(app)
    # Added last = outermost: the observer sees (and ids, logs, counts) what the guards refuse.
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=service.max_body_bytes_for,
                       timeout_s=lambda: service.body_timeout_s)
    app.add_middleware(HostGuardMiddleware, allowed=lambda: service.allowed_hosts)
    app.add_middleware(ObserveMiddleware, metrics=lambda: service.metrics, routes=lambda: app.router.routes)
    install_docs(app, service)
    keyed = [Depends(require_api_key)]

    @app.get("/healthz", response_model=Health, tags=["service"], summary="The process is alive (always 200)")
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", response_model=Readiness, tags=["service"],
             responses={503: {"model": Readiness, "description": "Model loading, missing or refused"}},
             summary="200 once the model is loaded; 503 with the reason until then")
    async def readyz(response: Response, service: ServiceDep) -> Readiness:
        if service.model is None:
            response.status_code = 503
            return Readiness(status=service.status, reason=public(service.reason))
        cache = service.cache_state()
        degraded = [f"embedding cache off, every text is embedded: {public(cache)}"] if cache else []
        return Readiness(status="ready", model=service.model.ref, degraded=degraded)

    @app.get("/v1/model", response_model=ModelInfo, tags=["model"], responses=_MODEL_ERRORS, dependencies=keyed,
             summary="The model being served: version, MLflow run, embedder, label sets, evaluation scores")
    async def model_info(service: ServiceDep) -> ModelInfo:
        _ready_model(service)
        return service.info()

    @app.get("/metrics", tags=["service"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
             summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    # Unset fields are left out: `explanation` appears only when asked for, so the default answer stays small.
    @app.post("/v1/classify", response_model=ClassifyResponse, response_model_exclude_unset=True,
              tags=["classify"], responses=_ERRORS, dependencies=keyed, summary="Classify one article")
    async def classify(body: ArticleRequest, request: Request, service: ServiceDep,
                       explain: Annotated[bool, Query(description="Add `explanation`: the text the model read, "
                                                      "the countries and evidence found in it")] = False) -> dict:
        # A request that breaks a limit is wrong whatever the model's state: 422 before 503.
        problems = _limit_problems(body, service.settings) if service.settings else []
        if problems:
            raise InputError(problems)
        model = _ready_model(service)
        # Embedding is CPU-bound: in the dispatcher's worker thread, the event loop keeps answering.
        inputs = [ArticleInput(body.text, body.title)]
        prediction = (await _predict(request, service, model, inputs))[0]
        result = to_result(prediction, model.ref)
        if explain:
            explained = await run_in_threadpool(explain_predictions, model.predictor, inputs, [prediction])
            result["explanation"] = explained[0].to_dict()
        service.metrics.observe_result("classify", result)
        request.state.labels = _log_labels([result])
        return result

    @app.post("/v1/classify/batch", response_model=BatchResponse, tags=["classify"], responses=_BATCH_ERRORS,
              dependencies=keyed, summary="Classify several articles; results in the order sent")
    async def classify_batch(body: BatchRequest, request: Request, service: ServiceDep) -> dict:
        problems, repeated = _batch_problems(body, service.settings) if service.settings else ([], [])
        if problems:
            raise InputError(problems)
        if repeated:
            first = repeated[0]
            more = f" (and {len(repeated) - 1} more repeated ids)" if len(repeated) > 1 else ""
            raise ServiceError(409, "duplicate_ids", f"invalid request: {first.field} {first.problem}{more}",
                               repeated[:MAX_FIELDS])
        model = _ready_model(service)
        inputs = [ArticleInput(a.text, a.title) for a in body.articles]
        predictions = await _predict(request, service, model, inputs)
        results = []
        for article, prediction in zip(body.articles, predictions, strict=True):
            result = to_result(prediction, model.ref)
            service.metrics.observe_result("batch", result)
            results.append({"id": article.id, **result})
        request.state.labels = _log_labels(results)
        return {"results": results}

    @app.post("/v1/admin/reload", response_model=ReloadResult, tags=["admin"], responses=_ADMIN_ERRORS,
              dependencies=[Depends(require_admin_key)],
              summary="Load the current champion (or a given version), verify it and swap it in")
    async def reload(service: ServiceDep, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResult:
        """Loads in a worker thread while the old model keeps answering; requests already admitted finish on the
        model they started with. A failed load keeps the old model and answers 409 with the reason."""
        if service.settings is None:
            raise ServiceError(503, "model_not_ready", "the service is still starting")
        try:
            old, new = await run_in_threadpool(service.reload, body.version if body else None)
        except ReloadError as exc:
            raise ServiceError(exc.status, "reload_failed", public(str(exc))) from None
        return ReloadResult(previous=old.ref if old else None, current=new.ref)

    include_page(app)  # the page itself is open; every call it makes goes through the keyed API routes
    include_feedback(app, dependencies=keyed, responses={k: _ERRORS[k] for k in (400, 401, 408, 413, 415)})
    return app


app = create_app()
