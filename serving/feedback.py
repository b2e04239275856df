"""``POST /v1/feedback``: an analyst's corrected labels, stored durably for the next training's export.

The router takes its dependencies as arguments, so the app can put it behind an API key
(``include_feedback(app, dependencies=[Depends(require_api_key)])``) without a change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from newsclf.feedback_store import Correction, FeedbackStore
from serving.errors import InputError
from serving.feedback_schemas import FeedbackRequest, FeedbackSaved
from serving.json_body import BoundedJSONRoute
from serving.schemas import ErrorResponse, FieldProblem, ModelRef
from serving.service import Service


def _service(request: Request) -> Service:
    return request.app.state.service


def feedback_store(request: Request) -> FeedbackStore:
    """The corrections file of the running service (NEWSCLF_FEEDBACK_DB); overridable in tests."""
    service = _service(request)
    assert service.settings is not None, "the service's settings are read at start-up"
    return FeedbackStore(service.settings.feedback_db)


router = APIRouter(tags=["feedback"], route_class=BoundedJSONRoute)  # duplicate keys refused, bounded parsing


@router.post("/v1/feedback", response_model=FeedbackSaved, status_code=201,
             responses={422: {"model": ErrorResponse, "description": "A label outside the taxonomy, labels that "
                              "contradict each other, or evidence outside the text"}},
             summary="Save an analyst's correction of an article's labels")
async def save_feedback(body: FeedbackRequest, request: Request,
                        store: Annotated[FeedbackStore, Depends(feedback_store)]) -> FeedbackSaved:
    service = _service(request)
    ref: ModelRef | None = body.model or (service.model.ref if service.model is not None else None)
    if ref is None:
        raise InputError([FieldProblem(field="model", problem="is required while no model is loaded: send the "
                                       "name, version and run_id of the model whose answer you correct")])
    correction = Correction(
        text=body.text, title=body.title, language=body.language, sector=body.sector, topics=tuple(body.topics),
        region=body.region, partners=tuple(body.partners),
        evidence={t: [tuple(s) for s in spans] for t, spans in body.evidence.items()},
        model_name=ref.name, model_version=ref.version, model_run_id=ref.run_id,
        predicted=body.predicted or {}, note=body.note,
    )
    saved = await run_in_threadpool(store.add, correction)  # a disk sync: off the event loop
    request.state.labels = f"feedback={saved.id} sector={saved.sector} model={ref.name}:{ref.version}"
    return FeedbackSaved(id=saved.id, created_at=saved.created_at, model=ref)


def include_feedback(app: FastAPI, dependencies: Sequence = (), responses: dict | None = None) -> None:
    """``dependencies``: the app's key check; ``responses``: the statuses it and the app's middleware add."""
    app.include_router(router, dependencies=list(dependencies), responses=responses)
