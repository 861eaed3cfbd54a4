"""The names in the OpenAPI document: operation ids and schema names become the function and
class names of generated clients (`make client`), so they are snake_case, unique and stable."""

import re
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI

from api.main import create_app
from api.openapi import check_operation_ids, operation_id

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# A model's name, or the body FastAPI combines for an operation (`Body_auth_login`).
SCHEMA_NAME = re.compile(r"^([A-Z][A-Za-z0-9]*|Body_[a-z0-9_]+)$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def operation_ids(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> operationId, webhooks included (path: the event type)."""
    return {
        (method.upper(), path): operation["operationId"]
        for section in ("paths", "webhooks")
        for path, item in document[section].items()
        for method, operation in item.items()
    }


def test_operation_ids_are_unique_snake_case(document: dict[str, Any]) -> None:
    ids = list(operation_ids(document).values())
    assert len(ids) > 80
    assert sorted(set(ids)) == sorted(ids)
    assert [i for i in ids if not SNAKE_CASE.match(i)] == []


def test_fastapi_users_routes_are_named_after_their_path(document: dict[str, Any]) -> None:
    auth = {key: value for key, value in operation_ids(document).items() if "/auth/" in key[1]}
    assert auth == {
        ("POST", "/api/v1/auth/login"): "auth_login",
        ("POST", "/api/v1/auth/logout"): "auth_logout",
        ("POST", "/api/v1/auth/register"): "auth_register",
        ("POST", "/api/v1/auth/verify"): "auth_verify",
        ("POST", "/api/v1/auth/request-verify-token"): "auth_request_verify_token",
        ("POST", "/api/v1/auth/forgot-password"): "auth_forgot_password",
        ("POST", "/api/v1/auth/reset-password"): "auth_reset_password",
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/events", "list_events"),
        ("POST", "/api/v1/events", "create_event"),
        ("GET", "/api/v1/events/{event_id}", "get_event"),
        ("POST", "/api/v1/events/{event_id}/approve", "approve_event"),
        ("POST", "/api/v1/events/{event_id}/registrations", "register_for_event"),
        ("GET", "/api/v1/events/{event_id}/calendar.ics", "get_event_calendar"),
        ("GET", "/api/v1/users/me", "get_my_account"),
        ("GET", "/api/v1/notifications", "list_notifications"),
        ("GET", "/api/v1/admin/stats", "get_admin_stats"),
        ("POST", "/api/v1/webhooks/{webhook_id}/test", "send_webhook_test"),
        ("GET", "/health", "check_health"),
        ("POST", "event.created", "webhook_event_created"),
    ],
)
def test_operation_id_is_the_handler_name(
    document: dict[str, Any], method: str, path: str, expected: str
) -> None:
    assert operation_ids(document)[(method, path)] == expected


def test_schema_names_read_as_class_names(document: dict[str, Any]) -> None:
    names = list(document["components"]["schemas"])
    # No generic `Page_EventPublic_`, no `-Input`/`-Output` twins, no path-derived bodies.
    assert [name for name in names if not SCHEMA_NAME.match(name)] == []
    assert {"EventPage", "UserPage", "AttendeePage", "NotificationPage"} <= set(names)
    bodies = sorted(name for name in names if name.startswith("Body_"))
    assert bodies == [
        "Body_auth_forgot_password",
        "Body_auth_login",
        "Body_auth_request_verify_token",
        "Body_auth_reset_password",
        "Body_auth_verify",
    ]


def test_no_inline_object_schema_is_left_unnamed(document: dict[str, Any]) -> None:
    """An inline object schema of a request or response body becomes a class named after its
    title (`Response Get Notification Preferences`) in generated clients: bodies are models."""
    inline = [
        (method, path, where)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for where, content in [
            ("request", operation.get("requestBody", {}).get("content", {})),
            *(
                (status, response.get("content", {}))
                for status, response in operation["responses"].items()
            ),
        ]
        for media in content.values()
        if media.get("schema", {}).get("type") == "object"
    ]
    assert inline == []


def test_an_operation_id_used_twice_is_refused() -> None:
    app = FastAPI(generate_unique_id_function=operation_id)
    first, second = APIRouter(prefix="/a"), APIRouter(prefix="/b")

    async def list_things() -> None:
        return None

    first.get("")(list_things)
    second.get("")(list_things)
    app.include_router(first)
    check_operation_ids(app)
    app.include_router(second)

    with pytest.raises(RuntimeError, match="^Operation ids used by more than one route: list"):
        check_operation_ids(app)
