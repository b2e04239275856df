"""Parsing request bodies with bounded work: duplicate keys refused, and a budget of JSON values per body.

The standard decoder parses the whole body before anything can look at it: a 3 MB body of a million ``{}``
becomes a million objects, then two million validation errors. Here the pure-Python scanner of the standard
library is driven with counting hooks, so parsing stops at the first value past the budget (a few hundred for a
full batch) and at the first repeated key; strings are still scanned by the C ``scanstring``, so an ordinary
body with long texts parses about as fast as with ``json.loads``.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from serving.errors import ServiceError
from serving.schemas import FieldProblem

# Values an article may need: the object, id, title, text (and a few spare for the errors a client should see).
VALUES_PER_ARTICLE = 8
BASE_VALUES = 16
INLINE_PARSE_BYTES = 64 * 1024


class BodyProblem(ValueError):
    """A body refused before validation; ``status`` 400 (not JSON as we accept it) or 422 (too many items)."""

    def __init__(self, status: int, code: str, problem: str) -> None:
        super().__init__(problem)
        self.status = status
        self.code = code
        self.problem = problem


def value_budget(max_items: int) -> int:
    """Most JSON values a body may hold: enough for ``max_items`` articles with every field, plus a margin."""
    return BASE_VALUES + VALUES_PER_ARTICLE * max_items


def _position(doc: str, pos: int) -> str:
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


class _BoundedDecoder(json.JSONDecoder):
    def __init__(self, doc: str, budget: int, max_items: int) -> None:
        super().__init__(object_pairs_hook=self._pairs, parse_constant=self._constant)
        self.doc = doc
        self.left = budget
        self.max_items = max_items
        self.parse_object = self._object
        self.parse_array = self._array
        self.scan_once = json.scanner.py_make_scanner(self)

    def _counted(self, scan_once):
        def scan(string: str, idx: int):
            self.left -= 1
            if self.left < 0:
                raise BodyProblem(422, "too_many_items",
                                  f"holds too many JSON values (more than {self.max_items} articles can need, "
                                  f"stopped at {_position(self.doc, idx)}): send at most {self.max_items} "
                                  "articles per request, each an object with id, title and text")
            return scan_once(string, idx)
        return scan

    # The scanner passes itself to these for the values inside; they get it back wrapped in the counter.
    def _object(self, s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        return json.decoder.JSONObject(s_and_end, strict, self._counted(scan_once), object_hook, object_pairs_hook,
                                       memo)

    def _array(self, s_and_end, scan_once):
        return json.decoder.JSONArray(s_and_end, self._counted(scan_once))

    @staticmethod
    def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise BodyProblem(400, "duplicate_key", f"repeats the key {key[:40]!r} in one object: send each "
                                  "field once (JSON parsers disagree on which copy wins)")
            out[key] = value
        return out

    @staticmethod
    def _constant(name: str):
        raise BodyProblem(400, "invalid_json", f"is not valid JSON: {name} is not a JSON number; send a number "
                          "or null")


def parse_body(body: bytes, max_items: int) -> Any:
    """The JSON value of ``body`` (UTF-8), or ``BodyProblem`` saying what to fix. Work is bounded by ``max_items``."""
    text = body.decode("utf-8")
    decoder = _BoundedDecoder(text, value_budget(max_items), max_items)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise BodyProblem(400, "invalid_json", f"is not valid JSON: {exc.msg} at {_position(text, exc.pos)}") \
            from None
    except RecursionError:
        raise BodyProblem(400, "invalid_json", "is nested too deeply: an article is a flat JSON object") from None
    except BodyProblem:
        raise
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise BodyProblem(400, "invalid_json", "holds a number with too many digits: no field here is a number") \
            from None


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route's function and its dependencies declare (FastAPI's ``Dependant`` tree)."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class BoundedJSONRoute(APIRoute):
    """A route whose JSON body is parsed by ``parse_body`` in a worker thread before FastAPI validates it.

    FastAPI then finds the parsed value cached on the request (``Request.json``) and validates at most the
    budget's few hundred values, so no body can hold the event loop for long.
    """

    def get_route_handler(self):
        handler = super().get_route_handler()
        # The query parameters this route declares (its dependencies' included): any other is a client's mistake
        # (a typo of `explain`, say) that would otherwise be ignored without a word.
        known = _query_names(self.dependant)

        async def bounded(request: Request):
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
                problem = f"unknown query parameter {', '.join(map(repr, unknown))}: {takes}"
                raise ServiceError(422, "invalid_input", f"invalid request: {problem}",
                                   [FieldProblem(field="query", problem=problem)])
            body = await request.body()
            if body:
                service = request.app.state.service
                max_items = service.max_items_for(request.url.path)
                try:
                    # A small body parses in microseconds: a thread hop would cost more than it saves.
                    if len(body) < INLINE_PARSE_BYTES:
                        request._json = parse_body(body, max_items)
                    else:
                        request._json = await run_in_threadpool(parse_body, body, max_items)
                except BodyProblem as exc:
                    raise ServiceError(exc.status, exc.code, f"invalid request: body {exc.problem}",
                                       [FieldProblem(field="body", problem=exc.problem)]) from None
            return await handler(request)

        return bounded
