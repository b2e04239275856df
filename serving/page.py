"""``GET /``: the analysts' page (paste or drop articles, see labels and evidence, correct them).

Everything it needs is served here (template, script, stylesheet: no CDN, it works offline); it talks to the
service through the public API only (``/v1/model``, ``/v1/classify?explain=true``, ``/v1/classify/batch``,
``/v1/feedback``), so what an analyst sees is what any client gets, errors included.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from serving.page_text import TEXT, pick_language
from serving.settings import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_TEXT_CHARS

HERE = Path(__file__).parent
STATIC = HERE / "static" / "page"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, lang: str | None = Query(None, description="en or fr")) -> HTMLResponse:
    language = pick_language(lang, request.headers.get("accept-language"))
    settings = request.app.state.service.settings
    config = {
        "maxBatchItems": settings.max_batch_items if settings else DEFAULT_MAX_BATCH_ITEMS,
        "maxTextChars": settings.max_text_chars if settings else DEFAULT_MAX_TEXT_CHARS,
        "mlflowUiUrl": settings.mlflow_ui_url if settings else None,
    }
    return templates.TemplateResponse(request, "page.html", {
        "lang": language, "other": "fr" if language == "en" else "en", "t": TEXT[language], "config": config,
    })


def include_page(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static/page", StaticFiles(directory=STATIC), name="page-static")
