"""Conditional GET for public reads: an ETag over the body, 304 when the client has it already.

The tag hashes the exact JSON sent, so it changes with anything the caller may see (visibility
differs between callers, hence `Vary: Authorization`). `Cache-Control: no-cache` lets clients and
caches keep the body but revalidate every time: a 304 saves the transfer, never freshness.
"""

import hashlib

from fastapi import Request, Response, status
from pydantic import BaseModel


def _matches(if_none_match: str, tag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored; * matches any tag."""
    opaque = tag.removeprefix("W/")
    return any(
        candidate.strip() == "*" or candidate.strip().removeprefix("W/") == opaque
        for candidate in if_none_match.split(",")
    )


def json_with_etag(request: Request, model: BaseModel) -> Response:
    body = model.model_dump_json().encode()
    tag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Authorization"}
    if _matches(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
