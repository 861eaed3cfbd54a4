"""CORS for browser clients of other origins (CORS_ORIGINS), through Starlette's middleware.

A refused preflight answers the API's JSON error body, not Starlette's plain text, so that a
page's script reads why: `CORS_PREFLIGHT_REFUSED`, with what was refused (origin, method,
headers) as the reason.
"""

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from api.idempotency.middleware import KEY_HEADER_NAME, REPLAYED_HEADER_NAME

# What a page of an allowed origin may send, and which of the answer's headers its scripts may
# read beyond the CORS-safelisted ones.
METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    KEY_HEADER_NAME,
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]
EXPOSED_HEADERS = ["ETag", "X-Request-ID", "Retry-After", REPLAYED_HEADER_NAME]
REFUSED_CODE = "CORS_PREFLIGHT_REFUSED"
_REFUSED_PREFIX = "Disallowed CORS "


class JsonRefusalCORSMiddleware(CORSMiddleware):
    """Starlette's CORSMiddleware, but a refused preflight is a JSON error body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix(_REFUSED_PREFIX)
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return JSONResponse(
            {"detail": {"code": REFUSED_CODE, "reason": f"Not allowed: {refused}"}},
            status_code=400,
            headers=headers,
        )


def add_cors(app: FastAPI, origins: list[str]) -> None:
    app.add_middleware(
        JsonRefusalCORSMiddleware,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
    )
