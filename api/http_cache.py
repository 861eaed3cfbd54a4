"""ETags over response bodies: conditional GET (If-None-Match) and conditional writes (If-Match).

The tag hashes the exact JSON sent, so it changes with anything the caller may see (visibility
differs between callers, hence `Vary: Authorization`). `Cache-Control: no-cache` lets clients and
caches keep the body but revalidate every time: a 304 saves the transfer, never freshness.
"""

import hashlib

from fastapi import Request, Response, status
from pydantic import BaseModel


def _tag(body: bytes) -> str:
    """The strong ETag of a body: the one place a tag is computed."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def tagged_body(model: BaseModel) -> tuple[bytes, str]:
    """The JSON body of `model` and its strong ETag."""
    body = model.model_dump_json().encode()
    return body, _tag(body)


def etag_of(model: BaseModel) -> str:
    return tagged_body(model)[1]


def _headers(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Authorization"}


def _candidates(header: str) -> list[str]:
    return [candidate.strip() for candidate in header.split(",")]


def _matches(if_none_match: str, tag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored; * matches any tag."""
    opaque = tag.removeprefix("W/")
    return any(
        candidate == "*" or candidate.removeprefix("W/") == opaque
        for candidate in _candidates(if_none_match)
    )


def if_match_allows(if_match: str, tag: str) -> bool:
    """Strong comparison (RFC 9110 13.1.1): * matches any tag, a weak (W/) tag never matches,
    a list matches when one of its members does."""
    return any(
        candidate == "*" or (not candidate.startswith("W/") and candidate == tag)
        for candidate in _candidates(if_match)
    )


def _conditional(
    request: Request, body: bytes, *, media_type: str, headers: dict[str, str]
) -> Response:
    """200 with `body`, or 304 when If-None-Match holds its tag (headers["ETag"]) already."""
    if _matches(request.headers.get("if-none-match", ""), headers["ETag"]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def json_with_etag(request: Request, model: BaseModel) -> Response:
    """200 with the body and its ETag, or 304 when If-None-Match holds that tag already."""
    body, tag = tagged_body(model)
    return _conditional(request, body, media_type="application/json", headers=_headers(tag))


def tagged_json(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """The body with its ETag (and the caching headers of the conditional reads)."""
    body, tag = tagged_body(model)
    return Response(
        body, status_code=status_code, media_type="application/json", headers=_headers(tag)
    )


def body_with_etag(
    request: Request, body: bytes, *, media_type: str, cache_control: str
) -> Response:
    """200 with a body that is not JSON (a calendar) and its strong ETag, or 304 when
    If-None-Match holds that tag already. No `Vary: Authorization`: for a body that does not
    depend on the caller."""
    headers = {"ETag": _tag(body), "Cache-Control": cache_control}
    return _conditional(request, body, media_type=media_type, headers=headers)
