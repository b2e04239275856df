"""Pure ASGI middleware: request ids, access logs and metrics (outer); body size, media type, UTF-8 (inner).

Pure ASGI rather than ``BaseHTTPMiddleware``: the body is counted while it streams in, and an exception still
reaches the app's catch-all handler.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response
from serving.metrics import Metrics
from serving.schemas import FieldProblem

log = logging.getLogger("serving")
# Ids from callers end up in logs: accept only what cannot forge a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The route's template (bounded label values), also for requests answered before routing."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL and hasattr(candidate, "path"):
            return candidate.path
    return "unmatched"


class ObserveMiddleware:
    """Gives each request an id (X-Request-ID honoured or generated, echoed), logs it once, records metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Callable[[], Metrics], routes: Callable[[], list[BaseRoute]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).get("x-request-id", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        body_bytes = 0

        async def counting_receive() -> Message:
            nonlocal body_bytes
            message = await receive()
            if message["type"] == "http.request":
                body_bytes += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, counting_receive, send_with_id)
        except BaseException:
            status = 500  # the catch-all handler answers outside this middleware
            raise
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(scope, self.routes())
            self.metrics().observe_request(route, scope["method"], status, seconds)
            labels = state.get("labels")
            log.info(
                "request_id=%s method=%s route=%s status=%d body_bytes=%d latency_ms=%.1f%s",
                request_id, scope["method"], route, status, body_bytes, seconds * 1000,
                f" {labels}" if labels else "",
            )


class BodyGuardMiddleware:
    """Refuses, before any parsing: bodies over the limit (413), non-JSON media types (415), non-UTF-8 bytes (400).

    The limit is checked against Content-Length first, then while the body streams in (a client may omit or
    understate Content-Length), so an oversized body is never held in memory.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: Callable[[str], int], timeout_s: Callable[[], float]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes(scope["path"])
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await self._refuse(scope, receive, send, 400, "bad_request",
                                   f"the Content-Length header {declared!r} is not a number of bytes")
                return
            if int(declared) > limit:
                await self._too_large(scope, receive, send, limit, f"declares {int(declared)} bytes")
                return
        body = bytearray()
        timeout = self.timeout_s()
        try:
            # A client that trickles its body would otherwise hold the connection (and its memory) for ever.
            async with asyncio.timeout(timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left; nobody to answer
                    body += message.get("body", b"")
                    if len(body) > limit:
                        await self._too_large(scope, receive, send, limit, f"has more than {limit} bytes")
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._refuse(scope, receive, send, 408, "body_timeout",
                               f"the body did not arrive within {timeout:g} s (NEWSCLF_BODY_TIMEOUT_S): send it at "
                               "once, not in a trickle", close=True)
            return
        if body:
            content_type = headers.get("content-type", "")
            if not _is_json(content_type):
                shown = f"{content_type!r}" if content_type else "no Content-Type"
                await self._refuse(scope, receive, send, 415, "unsupported_media_type",
                                   f"the body must be JSON sent with Content-Type: application/json (got {shown})",
                                   [FieldProblem(field="Content-Type", problem="must be application/json")])
                return
            try:
                bytes(body).decode("utf-8")
            except UnicodeDecodeError as exc:
                problem = (f"is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start} is invalid; "
                           "encode the JSON body as UTF-8")
                await self._refuse(scope, receive, send, 400, "invalid_encoding", f"invalid request: body {problem}",
                                   [FieldProblem(field="body", problem=problem)])
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int, what: str) -> None:
        problem = (f"{what}; the limit is {limit} bytes (NEWSCLF_MAX_BODY_BYTES): send fewer articles per "
                   "batch or shorter texts")
        await self._refuse(scope, receive, send, 413, "body_too_large", f"request body too large: the body {problem}",
                           [FieldProblem(field="body", problem=problem)])

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str,
                      fields: list[FieldProblem] | None = None, close: bool = False) -> None:
        request_id = scope.get("state", {}).get("request_id")
        response = error_response(status, code, message, fields or [], request_id=request_id,
                                  headers={"Connection": "close"} if status == 413 or close else None)
        await response(scope, receive, send)


# Probes come from orchestrators that address the pod by IP: they must not need an allowed Host name.
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def host_allowed(host: str, allowed: list[str]) -> bool:
    """``host`` (a Host header, port stripped) matches an entry: exact, ``*.domain`` for subdomains, or ``*``."""
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _host_name(header: str) -> str:
    if header.startswith("["):  # [::1]:8000
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGuardMiddleware:
    """Answers only requests whose Host is allowed (NEWSCLF_ALLOWED_HOSTS): DNS-rebinding pages cannot reach it."""

    def __init__(self, app: ASGIApp, *, allowed: Callable[[], list[str]]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host", "")
        if host_allowed(_host_name(header.strip().lower()), self.allowed()):
            await self.app(scope, receive, send)
            return
        shown = header[:100]
        response = error_response(400, "host_not_allowed",
                                  f"the Host header {shown!r} is not one this service answers to: use an allowed "
                                  "name (NEWSCLF_ALLOWED_HOSTS)",
                                  [FieldProblem(field="Host", problem="is not in NEWSCLF_ALLOWED_HOSTS")],
                                  request_id=scope.get("state", {}).get("request_id"))
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the buffered body to the app once, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
