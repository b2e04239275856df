"""``/docs`` from local files, and the OpenAPI document with the running service's limits.

Swagger UI's files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, Apache-2.0), served under
``/docs/assets/``: the page works without internet (FastAPI's default loads them from a CDN). The OpenAPI
document states the limits the service applies (text and title lengths, articles per batch), read from the
settings when it is first asked for, so schema-based clients and fuzzers send what the service accepts.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


def _apply_limits(schema: dict, max_text: int, max_title: int, max_items: int) -> None:
    for component in schema.get("components", {}).get("schemas", {}).values():
        props = component.get("properties", {})
        if "maxLength" in props.get("text", {}):
            props["text"]["maxLength"] = max_text
        if "maxLength" in props.get("title", {}):
            props["title"]["maxLength"] = max_title
        if "maxItems" in props.get("articles", {}):
            props["articles"]["maxItems"] = max_items


def install_docs(app: FastAPI, service) -> None:
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes)
            s = service.settings
            if s is not None:
                _apply_limits(schema, s.max_text_chars, s.max_title_chars, s.max_batch_items)
            if s is None:
                return schema  # not cached: the settings are read when the app starts
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
