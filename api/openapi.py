"""The error answers of the OpenAPI document: one example per error code, from the domain errors.

A route lists the AppError classes it can raise, `responses=error_responses(EventNotFound,
AlreadyRegistered)`: each status then names its codes in its description and carries one
example per code, whose summary is the error's docstring and whose value is the body it is
sent with (AppError.example_detail), over ErrorBody. The codes come from the classes the
services raise, so the document cannot name a code the service does not send.

document_api() adds what the stack answers on any route (401 and 403 INSUFFICIENT_SCOPE where
a token is taken, 413 where a body is read, 429 where the auth throttle applies, 503 on every
API operation), an example of FastAPI's validation 422 for each operation that has one, an
explicit empty `security` on operations that take no token, and the server; it also restores
the models' examples as declared (api.examples).

operation_id() names each operation (generate_unique_id_function): stable snake_case names
that generated clients turn into their function names (`list_events`, `auth_login`);
check_operation_ids() refuses an app in which two operations share one.
"""

import inspect
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol

from fastapi import FastAPI, status
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from api.errors import (
    AppError,
    InsufficientScope,
    RequestTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from api.examples import restore_examples

JSON = "application/json"
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
VALIDATION_BODY = {"$ref": "#/components/schemas/HTTPValidationError"}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
# The end of the description of an operation the auth throttle applies to.
THROTTLED_NOTE = " Throttled per client IP (AUTH_RATE_LIMIT): past the limit, 429 with Retry-After."
# The key of the example of FastAPI's validation body in a 422 (not a code: its detail is a list).
VALIDATION_EXAMPLE = "validation_error"


class ErrorDetail(BaseModel):
    """A code with the reason behind it, and the fields some codes add (`required_scope`,
    `checked_in_at`, `offer_expires_at`, `registered_count`, `series_id`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "code": "ALREADY_CHECKED_IN",
                    "reason": "Already checked in",
                    "checked_in_at": "2030-03-19T16:52:31.114021+00:00",
                }
            ]
        },
    )

    code: str = Field(description="The stable UPPER_SNAKE code: match on this")
    reason: str | None = Field(description="Why, for people to read; its wording may change")


class ErrorBody(BaseModel):
    """An error answer: `{"detail": CODE}`, or `{"detail": {"code", "reason", ...}}`
    when the code comes with a reason and fields of its own."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "EVENT_NOT_FOUND"},
                {
                    "detail": {
                        "code": "EVENT_NOT_OPEN",
                        "reason": "The registration deadline has passed",
                    }
                },
            ]
        }
    )

    detail: str | ErrorDetail = Field(
        description="The UPPER_SNAKE code alone, or an object with the code, a reason and any "
        "fields the code adds. Codes are stable; fastapi-users' codes are kept as they are."
    )
    request_id: str | None = Field(
        default=None,
        description="503 only: the answer's X-Request-ID, which the service's log names too",
    )


def error_summary(error: type[AppError]) -> str:
    """What an error means, for an example's summary: its docstring's first paragraph (a class
    without a docstring of its own: its code)."""
    doc = error.__dict__.get("__doc__")
    if not doc:
        return str(error.code)
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def error_example(error: type[AppError]) -> dict[str, Any]:
    """The example of one error: its summary and the body it is sent with."""
    return {"summary": error_summary(error), "value": {"detail": error.example_detail()}}


def _codes(examples: Mapping[str, Any]) -> list[str]:
    return [key for key in examples if key != VALIDATION_EXAMPLE]


def add_error_answer(
    responses: dict[Any, Any],
    status_code: int | str,
    examples: Mapping[str, Any],
    *,
    description: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Add errors (examples keyed by their code, over ErrorBody) to a status the operation may
    already document: the codes join its description (or `description` does), the examples
    join its examples, and its schema becomes anyOf its own and ErrorBody when they differ."""
    response = responses.setdefault(status_code, {"description": ""})
    media = response.setdefault("content", {}).setdefault(JSON, {})
    known = media.setdefault("examples", {})
    new = {code: example for code, example in examples.items() if code not in known}
    added = description if description is not None else ", ".join(_codes(new))
    if new and added:
        response["description"] = ", ".join(filter(None, [response.get("description"), added]))
    known.update(new)
    current = media.get("schema")
    if current is None:
        media["schema"] = dict(ERROR_BODY)
    elif current != ERROR_BODY and ERROR_BODY not in current.get("anyOf", []):
        media["schema"] = {"anyOf": [current, dict(ERROR_BODY)]}
    if headers:
        response["headers"] = {**response.get("headers", {}), **headers}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the errors it can answer, one example per code. A 422 here
    comes beside FastAPI's validation body (FastAPI documents its own 422 only where the route
    lists none): either body may answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        first: dict[str, Any]
        if error.status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
            first = {
                "description": "Validation Error",
                "content": {JSON: {"schema": VALIDATION_BODY}},
            }
        else:
            # The model puts ErrorBody (and ErrorDetail) in the document's components.
            first = {"description": "", "model": ErrorBody}
        out.setdefault(error.status_code, first)
        add_error_answer(out, error.status_code, {error.code: error_example(error)})
    return out


# --- what the stack answers on any route ------------------------------------------------------


def _validation_error(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A realistic FastAPI validation error for the operation: a required body field left out,
    else an id that is no UUID, else page=0, else its first parameter missing."""
    bodies = operation.get("requestBody", {}).get("content", {})
    media: dict[str, Any] = next(iter(bodies.values()), {})
    ref = media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
    required = schemas.get(ref, {}).get("required", [])
    if required:
        return {
            "type": "missing",
            "loc": ["body", required[0]],
            "msg": "Field required",
            "input": {},
        }
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        if parameter["in"] == "path" and parameter["schema"].get("format") == "uuid":
            # pydantic's own words, as FastAPI answers them.
            try:
                TypeAdapter(uuid.UUID).validate_python("abc")
            except ValidationError as error:
                [found] = error.errors(include_url=False)
                return {**found, "loc": ["path", parameter["name"]]}
    if any(p["in"] == "query" and p["name"] == "page" for p in parameters):
        return {
            "type": "greater_than_equal",
            "loc": ["query", "page"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        }
    where, name = (parameters[0]["in"], parameters[0]["name"]) if parameters else ("body", "body")
    return {"type": "missing", "loc": [where, name], "msg": "Field required", "input": None}


def _document_validation(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An example of FastAPI's validation body where the operation documents it."""
    response = operation["responses"].get("422")
    media = response.get("content", {}).get(JSON, {}) if response else {}
    schema = media.get("schema", {})
    if schema != VALIDATION_BODY and VALIDATION_BODY not in schema.get("anyOf", []):
        return
    example = {
        "summary": "A parameter or body field is missing or invalid; `loc` says which",
        "value": {"detail": [_validation_error(operation, schemas)]},
    }
    media["examples"] = {VALIDATION_EXAMPLE: example, **media.get("examples", {})}


def _document_token_errors(operation: dict[str, Any]) -> None:
    """An operation that takes a token: 401 for a missing or dead one, and 403
    INSUFFICIENT_SCOPE for an API token without the operation's `x-token-scope` (none: login
    tokens only)."""
    responses = operation["responses"]
    add_error_answer(responses, "401", {Unauthorized.code: error_example(Unauthorized)})
    scope = operation.get("x-token-scope")
    refusal = InsufficientScope(scope)
    holder = f"an API token without {scope}" if scope else "an API token: login tokens only"
    example = {"summary": holder[0].upper() + holder[1:], "value": {"detail": refusal.detail}}
    add_error_answer(
        responses,
        "403",
        {refusal.code: example},
        description=f"{refusal.code} ({holder})",
    )


def _describe_token(operation: dict[str, Any]) -> None:
    """Which tokens an operation takes, at the end of its description."""
    scope = operation.get("x-token-scope")
    note = (
        f"API tokens need the `{scope}` scope."
        if scope
        else "Login tokens only: an API token gets 403 INSUFFICIENT_SCOPE."
    )
    operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}"


def _document_common_errors(schema: dict[str, Any], *, throttled: frozenset[str]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    unavailable = error_example(ServiceUnavailable)
    unavailable["value"]["request_id"] = "5f0c6e9a8d7b4c3e9a1f2b3c4d5e6f70"
    for path, item in schema["paths"].items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            _document_validation(operation, schemas)
            if not path.startswith("/api/"):
                continue
            add_error_answer(
                responses,
                "503",
                {ServiceUnavailable.code: unavailable},
                description=f"{ServiceUnavailable.code}: the database does not answer",
                headers=RETRY_AFTER,
            )
            if "requestBody" in operation:
                add_error_answer(
                    responses, "413", {RequestTooLarge.code: error_example(RequestTooLarge)}
                )
            if operation.get("security"):
                _document_token_errors(operation)
                _describe_token(operation)
            if path in throttled:
                operation["description"] = operation.get("description", "") + THROTTLED_NOTE
                add_error_answer(
                    responses,
                    "429",
                    {TooManyRequests.code: error_example(TooManyRequests)},
                    description=f"{TooManyRequests.code} (AUTH_RATE_LIMIT per client IP)",
                    headers=RETRY_AFTER,
                )


def _declare_public(schema: dict[str, Any]) -> None:
    """`security: []` on the operations that take no token (the document's webhooks too: our
    requests to receivers carry signatures, not tokens), so that none leaves it unsaid."""
    for section in ("paths", "webhooks"):
        for item in schema.get(section, {}).values():
            for operation in item.values():
                operation.setdefault("security", [])


def complete_document(app: FastAPI, step: Callable[[dict[str, Any]], None]) -> None:
    """Have `step` complete the app's OpenAPI document, in place, once FastAPI has built it
    and before it is kept: each step runs once, after those added before it."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        step(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_api(app: FastAPI, *, throttled: frozenset[str]) -> None:
    """Complete the app's OpenAPI document: the stack's answers on every operation, examples
    of validation errors, public operations declared as such, and the server (the document's
    own origin)."""

    def complete(schema: dict[str, Any]) -> None:
        for component in schema.get("components", {}).get("schemas", {}).values():
            restore_examples(component)
        _document_common_errors(schema, throttled=throttled)
        _declare_public(schema)
        schema.setdefault("servers", [{"url": "/", "description": "This service"}])

    complete_document(app, complete)


# --- operation ids ----------------------------------------------------------------------------


class _Route(Protocol):
    """What FastAPI hands `generate_unique_id_function`: a route as included in the app."""

    name: str
    tags: list[str | Enum]
    path_format: str


def operation_id(route: _Route) -> str:
    """The handler's name, verb_noun and unique across the API (`list_events`, `get_event`).

    fastapi-users names its routes `<router>:<action>` (`auth:database.login`,
    `verify:request-token`): those take their first tag and the last segment of their path
    instead (`auth_login`, `auth_request_verify_token`). FastAPI also names a route's combined
    body model after this id (`Body_auth_login`).
    """
    if ":" not in route.name:
        return route.name
    prefix = f"{route.tags[0]}_" if route.tags else ""
    action = route.path_format.rstrip("/").rsplit("/", 1)[-1]
    return f"{prefix}{action}".replace("-", "_")


def check_operation_ids(app: FastAPI) -> None:
    """Refuse an app in which two operations share an id: a generated client would lose one."""
    ids = Counter(
        route.operation_id or route.unique_id
        for route in iter_route_contexts([*app.routes, *app.webhooks.routes])
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
    )
    twice = sorted(name for name, count in ids.items() if count > 1)
    if twice:
        raise RuntimeError(f"Operation ids used by more than one route: {', '.join(twice)}")
