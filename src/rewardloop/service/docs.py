"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served from local assets, never from a CDN.

FastAPI does not ship the assets; the ``fastapi-offline`` package (the ``docs`` extra) does. With it
installed both pages are served and work offline; without it neither route exists (``/openapi.json``
is always served).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

PREFIX = "/docs/static"


def assets() -> Path | None:
    """The folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``redoc.standalone.js``."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    wanted = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    return folder if all((folder / name).is_file() for name in wanted) else None


def mount(app: FastAPI) -> bool:
    """Serve /docs and /redoc from the local assets, if installed; whether they are."""
    folder = assets()
    if folder is None:
        return False
    app.mount(PREFIX, StaticFiles(directory=folder), name="docs-static")
    title = f"{app.title} API"

    def page(
        render: Callable[..., HTMLResponse], **files: str | bool
    ) -> Callable[[], Awaitable[HTMLResponse]]:
        """The route that renders one viewer of the app's OpenAPI document, with its asset URLs."""

        async def route() -> HTMLResponse:
            return render(openapi_url=app.openapi_url or "/openapi.json", title=title, **files)

        return route

    swagger = page(
        get_swagger_ui_html,
        swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/favicon.png",
    )
    redoc = page(
        get_redoc_html,
        redoc_js_url=f"{PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    return True
