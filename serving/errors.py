"""One error shape for every failure.

    {"error": {"code": "...", "message": "...", "fields": [{"field": "...", "problem": "..."}], "request_id": "..."}}

Messages name the field and say what to send instead; they never carry the submitted text or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.schemas import ErrorBody, ErrorResponse, FieldProblem

log = logging.getLogger("serving")
_SHOWN_FIELDS = 5
# Most field problems listed in one answer (the message gives the total): a body of many bad items must not
# become an answer many times its size.
MAX_FIELDS = 20
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               413: "body_too_large", 415: "unsupported_media_type"}


class ServiceError(Exception):
    """A failure the client should see as-is (status, code, message, fields)."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[FieldProblem] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = headers


class InputError(ServiceError):
    """Request fields that break a limit of the running service (422, like the schema's own checks)."""

    def __init__(self, fields: Sequence[FieldProblem]) -> None:
        super().__init__(422, "invalid_input", _summary(fields), fields[:MAX_FIELDS])


def request_id_of(scope_or_request) -> str | None:
    scope = scope_or_request.scope if isinstance(scope_or_request, Request) else scope_or_request
    return scope.get("state", {}).get("request_id")


def error_response(status: int, code: str, message: str, fields: Sequence[FieldProblem] = (), *,
                   request_id: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, fields=list(fields), request_id=request_id))
    headers = dict(headers or {})
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def field_path(loc: Sequence[str | int]) -> str:
    """``("body", "articles", 2, "text")`` -> ``articles[2].text``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _problem(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    loc = error["loc"]
    if kind == "missing":
        if len(loc) <= 1:
            return 'is required: send a JSON object such as {"text": "..."}'
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request: remove it or check its spelling"
    if kind == "string_type":
        return "must be a string"
    if kind == "list_type":
        return "must be a JSON array"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    if kind == "too_short" and loc[-1] == "articles":
        return "must hold at least one article"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    return str(error["msg"]).removeprefix("Value error, ")


def _summary(fields: Sequence[FieldProblem]) -> str:
    shown = "; ".join(f"{f.field} {f.problem}" for f in fields[:_SHOWN_FIELDS])
    more = f" (and {len(fields) - _SHOWN_FIELDS} more problems)" if len(fields) > _SHOWN_FIELDS else ""
    listed = f" [{MAX_FIELDS} of {len(fields)} problems listed in fields]" if len(fields) > MAX_FIELDS else ""
    return f"invalid request: {shown}{more}{listed}"


def _json_position(doc: object, pos: int) -> str:
    if not isinstance(doc, str):
        return f"at character {pos}"
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f"at line {line}, column {column}"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    rid = request_id_of(request)
    bad_json = [e for e in errors if e["type"] == "json_invalid"]
    if bad_json:
        e = bad_json[0]
        reason = (e.get("ctx") or {}).get("error", "JSON decode error")
        where = _json_position(getattr(exc, "body", None), int(e["loc"][-1]))
        problem = f"is not valid JSON: {reason.removesuffix(' at')} {where}"
        return error_response(400, "invalid_json", f"invalid request: body {problem}",
                              [FieldProblem(field="body", problem=problem)], request_id=rid)
    fields = [FieldProblem(field=field_path(e["loc"]), problem=_problem(e)) for e in errors]
    return error_response(422, "invalid_input", _summary(fields), fields[:MAX_FIELDS], request_id=rid)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.fields, request_id=request_id_of(request),
                          headers=exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}: see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}: see /docs for the API"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, request_id=request_id_of(request),
                          headers=dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id_of(request)
    log.error("request_id=%s unhandled %s on %s %s", rid, type(exc).__name__, request.method, request.url.path,
              exc_info=exc)
    return error_response(500, "internal_error",
                          f"internal error: the service failed on this request; quote request id {rid} to the "
                          "operators", request_id=rid)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
