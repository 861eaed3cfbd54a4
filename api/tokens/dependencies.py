"""Which scope a route needs of an API token, and the check the authentication runs with it.

Each route that takes a token declares its scope once, beside the route:
`openapi_extra=token_scope(Scope.EVENTS_READ)`, which also shows it in the OpenAPI document as
`x-token-scope`. A route that takes a token and declares none is for login tokens only.
"""

from collections.abc import Iterable
from typing import Any

from starlette.requests import HTTPConnection

from api.errors import InsufficientScope
from api.tokens.models import Scope

SCOPE_KEY = "x-token-scope"


def token_scope(scope: Scope) -> dict[str, Any]:
    """The `openapi_extra` of a route that API tokens holding `scope` may call."""
    return {SCOPE_KEY: scope.value}


def required_scope(connection: HTTPConnection) -> Scope | None:
    """The scope the matched route declares; None: login tokens only."""
    extra = getattr(connection.scope.get("route"), "openapi_extra", None)
    declared = extra.get(SCOPE_KEY) if extra else None
    return Scope(declared) if declared else None


def check_scope(connection: HTTPConnection | None, scopes: Iterable[str]) -> None:
    """403 INSUFFICIENT_SCOPE unless the API token's `scopes` cover the matched route."""
    needed = required_scope(connection) if connection is not None else None
    if needed is None or needed not in scopes:
        raise InsufficientScope(needed)
