"""The API's documentation pages, /docs (Swagger UI) and /redoc, served whole by the service.

FastAPI's own pages load Swagger UI and ReDoc from public CDNs, so where the browser cannot
reach them (no internet, a strict proxy) the pages stay blank, and where it can, every reader
tells those CDNs. Here the assets are the copies the fastapi-offline package ships, served under
ASSETS_PATH, and each page carries a Content-Security-Policy that lets it load nothing from
anywhere else: ReDoc's bundle asks `https://cdn.redoc.ly` for a logo (Redocly/redoc#2108), which
the browser then refuses without sending. Swagger UI keeps the token of "Authorize" across
reloads (persistAuthorization) and has no online validator badge.
"""

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PATH = "/docs/static"
ASSETS = Path(fastapi_offline.__file__).parent / "static"

SWAGGER_UI_PARAMETERS = {
    # The token from "Authorize" is kept in the browser's localStorage across reloads.
    "persistAuthorization": True,
    # No badge image from validator.swagger.io (shown for a document not on localhost).
    "validatorUrl": None,
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _policy(inline_scripts: list[str]) -> str:
    """Only this origin, plus the page's own inline scripts (by hash), inline styles (both UIs
    set them) and data: images (Swagger UI's icons)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in inline_scripts
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}".rstrip()
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _confined(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": _policy(_INLINE_SCRIPT.findall(html)),
            "Referrer-Policy": "no-referrer",
        },
    )


def install(app: FastAPI) -> None:
    """Serve /docs, its OAuth2 redirect page and /redoc on `app` (made with docs_url=None and
    redoc_url=None), and the assets they load."""
    openapi_url = app.openapi_url
    assert openapi_url is not None
    app.swagger_ui_parameters = {**(app.swagger_ui_parameters or {}), **SWAGGER_UI_PARAMETERS}
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    def prefix(request: Request) -> str:
        # Behind a proxy that serves the app under a path, the pages' URLs keep that path.
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return _confined(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return _confined(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return _confined(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route(SWAGGER_UI_PATH, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_PATH, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)
