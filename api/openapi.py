"""Operation ids of the OpenAPI document: stable snake_case names that generated clients turn
into their function names (`list_events`, `auth_login`)."""

from collections import Counter
from enum import Enum
from typing import Protocol

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts


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
