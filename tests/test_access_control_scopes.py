"""AC-1 and TOK-4 for API tokens: the scope every operation needs, and what a token caller gets.

SCOPES gives, for every operation of the OpenAPI document, the scope an API token needs
(API-integrations.md, API tokens), SESSION (a login token only) or NONE (the operation takes no
token). Tests check it covers every operation and equals what the app declares; then every
operation that takes a token is called, as each role of tests/access_control/callers.py, with an
API token holding exactly the needed scope (the same status as that role's login token), with one
holding every other scope (403 INSUFFICIENT_SCOPE naming it, before any 404 or role check), and,
for SESSION operations, with one holding every scope (403 INSUFFICIENT_SCOPE, no scope named).
"""

from typing import Any, Literal

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from api.tokens.models import Scope
from api.users.models import User, UserRole
from tests.access_control.callers import ANONYMOUS, CALLER_ROLES, CALLERS
from tests.access_control.expected import EXPECTED
from tests.access_control.matrix import (
    HTTP_METHODS,
    LOGIN,
    Account,
    Call,
    Run,
    expected_status,
    new_account,
    target_path,
)
from tests.factories import api_token_headers, create_user

SESSION: Literal["SESSION"] = "SESSION"
NONE: Literal["NONE"] = "NONE"
Need = Scope | Literal["SESSION", "NONE"]

SCOPES: dict[tuple[str, str], Need] = {
    ("POST", "/api/v1/auth/register"): NONE,
    ("POST", "/api/v1/auth/login"): NONE,
    ("POST", "/api/v1/auth/request-verify-token"): NONE,
    ("POST", "/api/v1/auth/verify"): NONE,
    ("POST", "/api/v1/auth/forgot-password"): NONE,
    ("POST", "/api/v1/auth/reset-password"): NONE,
    ("GET", "/health"): NONE,
    ("GET", "/ready"): NONE,
    ("POST", "/api/v1/auth/logout"): SESSION,
    ("GET", "/api/v1/users/me"): Scope.USERS_READ,
    ("PATCH", "/api/v1/users/me"): SESSION,
    ("DELETE", "/api/v1/users/me"): SESSION,
    ("GET", "/api/v1/profiles/{nickname}"): Scope.USERS_READ,
    ("GET", "/api/v1/users"): Scope.USERS_READ,
    ("POST", "/api/v1/users"): SESSION,
    ("GET", "/api/v1/users/{user_id}"): Scope.USERS_READ,
    ("PATCH", "/api/v1/users/{user_id}"): SESSION,
    ("DELETE", "/api/v1/users/{user_id}"): SESSION,
    ("PUT", "/api/v1/users/{user_id}/role"): SESSION,
    ("PUT", "/api/v1/users/{user_id}/professional"): SESSION,
    ("POST", "/api/v1/users/{user_id}/unlock"): SESSION,
    ("POST", "/api/v1/users/me/api-tokens"): SESSION,
    ("GET", "/api/v1/users/me/api-tokens"): SESSION,
    ("DELETE", "/api/v1/users/me/api-tokens/{token_id}"): SESSION,
    ("GET", "/api/v1/users/me/export"): SESSION,
    ("GET", "/api/v1/users/me/calendar-feed"): Scope.REGISTRATIONS_READ,
    ("POST", "/api/v1/users/me/calendar-feed/rotate"): SESSION,
    ("GET", "/api/v1/calendar/{feed_token}.ics"): NONE,
    ("POST", "/api/v1/events"): Scope.EVENTS_WRITE,
    ("GET", "/api/v1/events"): Scope.EVENTS_READ,
    ("GET", "/api/v1/events/{event_id}"): Scope.EVENTS_READ,
    ("PATCH", "/api/v1/events/{event_id}"): Scope.EVENTS_WRITE,
    ("DELETE", "/api/v1/events/{event_id}"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/events/{event_id}/approve"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/events/{event_id}/reject"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/events/{event_id}/submit"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/events/{event_id}/cancel"): Scope.EVENTS_WRITE,
    ("GET", "/api/v1/events/{event_id}/calendar.ics"): Scope.EVENTS_READ,
    ("POST", "/api/v1/series"): Scope.EVENTS_WRITE,
    ("GET", "/api/v1/series/{series_id}"): Scope.EVENTS_READ,
    ("POST", "/api/v1/series/{series_id}/approve"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/series/{series_id}/reject"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/series/{series_id}/submit"): Scope.EVENTS_WRITE,
    ("DELETE", "/api/v1/series/{series_id}"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/series/{series_id}/cancel"): Scope.EVENTS_WRITE,
    ("POST", "/api/v1/events/{event_id}/registrations"): Scope.REGISTRATIONS_WRITE,
    ("DELETE", "/api/v1/events/{event_id}/registrations/me"): Scope.REGISTRATIONS_WRITE,
    ("GET", "/api/v1/events/{event_id}/registrations/me"): Scope.REGISTRATIONS_READ,
    ("POST", "/api/v1/events/{event_id}/registrations/me/accept"): Scope.REGISTRATIONS_WRITE,
    ("POST", "/api/v1/events/{event_id}/registrations/me/decline"): Scope.REGISTRATIONS_WRITE,
    # The networking directory and connections belong to attending an event.
    ("PUT", "/api/v1/events/{event_id}/directory/me"): Scope.REGISTRATIONS_WRITE,
    ("DELETE", "/api/v1/events/{event_id}/directory/me"): Scope.REGISTRATIONS_WRITE,
    ("GET", "/api/v1/events/{event_id}/directory"): Scope.REGISTRATIONS_READ,
    ("POST", "/api/v1/events/{event_id}/connections"): Scope.REGISTRATIONS_WRITE,
    ("POST", "/api/v1/connections/{connection_id}/accept"): Scope.REGISTRATIONS_WRITE,
    ("POST", "/api/v1/connections/{connection_id}/decline"): Scope.REGISTRATIONS_WRITE,
    ("DELETE", "/api/v1/connections/{connection_id}"): Scope.REGISTRATIONS_WRITE,
    ("GET", "/api/v1/users/me/connections"): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/users/me/connections.vcf"): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/events/{event_id}/registrations"): Scope.REGISTRATIONS_READ,
    (
        "POST",
        "/api/v1/events/{event_id}/registrations/{registration_id}/check-in",
    ): Scope.REGISTRATIONS_WRITE,
    ("POST", "/api/v1/events/{event_id}/check-in"): Scope.REGISTRATIONS_WRITE,
    ("GET", "/api/v1/events/{event_id}/stats"): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/events/{event_id}/stats.png"): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/users/me/registrations"): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/users/me/registrations/{registration_id}"): Scope.REGISTRATIONS_READ,
    (
        "GET",
        "/api/v1/users/me/registrations/{registration_id}/ticket.png",
    ): Scope.REGISTRATIONS_READ,
    ("GET", "/api/v1/notifications"): Scope.NOTIFICATIONS_READ,
    ("POST", "/api/v1/notifications/{notification_id}/read"): Scope.NOTIFICATIONS_WRITE,
    ("POST", "/api/v1/notifications/read-all"): Scope.NOTIFICATIONS_WRITE,
    ("GET", "/api/v1/users/me/notification-preferences"): Scope.NOTIFICATIONS_READ,
    ("PATCH", "/api/v1/users/me/notification-preferences"): Scope.NOTIFICATIONS_WRITE,
    ("GET", "/api/v1/audit-log"): Scope.ADMIN_READ,
    ("GET", "/api/v1/admin/stats"): Scope.ADMIN_READ,
    ("PUT", "/api/v1/testing/clock"): SESSION,
    ("DELETE", "/api/v1/testing/clock"): SESSION,
    ("POST", "/api/v1/testing/jobs/{name}"): SESSION,
    ("POST", "/api/v1/webhooks"): Scope.WEBHOOKS_WRITE,
    ("GET", "/api/v1/webhooks"): Scope.WEBHOOKS_READ,
    ("GET", "/api/v1/webhooks/{webhook_id}"): Scope.WEBHOOKS_READ,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): Scope.WEBHOOKS_WRITE,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Scope.WEBHOOKS_WRITE,
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): Scope.WEBHOOKS_WRITE,
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): Scope.WEBHOOKS_WRITE,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Scope.WEBHOOKS_READ,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): Scope.WEBHOOKS_READ,
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): Scope.WEBHOOKS_WRITE,
}
TOKEN_CALLERS = tuple(caller for caller in CALLERS if caller != ANONYMOUS)
# What an API token holds in each kind of call.
EXACT = "exact scope"
ALL_BUT = "every other scope"
ALL = "every scope"


def declared_scopes(app: FastAPI) -> dict[tuple[str, str], Need]:
    """What the app declares: x-token-scope, else SESSION where the operation takes a token."""
    declared: dict[tuple[str, str], Need] = {}
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            scope = operation.get("x-token-scope")
            takes_token = bool(operation["security"])
            declared[(method.upper(), path)] = (
                Scope(scope) if scope else SESSION if takes_token else NONE
            )
    return declared


def holding(kind: str, need: Need) -> list[Scope]:
    if kind == EXACT:
        assert isinstance(need, Scope)
        return [need]
    return [scope for scope in Scope if scope != need]


async def token_account(
    session: AsyncSession, run: Run, role: UserRole, scopes: list[Scope]
) -> Account:
    """A user of `role` calling with an API token holding `scopes`."""
    user: User = await create_user(session, role=role)
    headers = await api_token_headers(session, user, scopes)
    account = Account(id=user.id, email=user.email, nickname=user.nickname, headers=headers)
    run.accounts.append(account)
    return account


async def run_token_matrix(client: Any, session: AsyncSession) -> list[tuple[str, Call]]:
    """Every operation that takes a token, as every role, with the API tokens of its kinds."""
    run = Run()
    await new_account(session, run, UserRole.ADMIN)  # another admin stays throughout
    calls: list[tuple[str, Call]] = []
    for operation, need in SCOPES.items():
        if need == NONE:
            continue
        kinds = (ALL,) if need == SESSION else (EXACT, ALL_BUT)
        for kind in kinds:
            for caller in TOKEN_CALLERS:
                for unknown_target in (False, True):
                    if unknown_target and "{" not in operation[1]:
                        continue
                    actor = await token_account(
                        session, run, CALLER_ROLES[caller], holding(kind, need)
                    )
                    path = await target_path(session, run, operation, actor, unknown=unknown_target)
                    response = await client.request(
                        operation[0],
                        path,
                        headers=actor.headers,
                        json=run.body(operation, path),
                    )
                    calls.append((kind, Call(operation, caller, actor, unknown_target, response)))
    return calls


def refusal(need: Need) -> dict[str, Any]:
    scope = need if isinstance(need, Scope) else None
    reason = (
        f"This API token lacks the scope {scope}"
        if scope
        else "This route needs a login token: API tokens may not call it"
    )
    return {"detail": {"code": "INSUFFICIENT_SCOPE", "reason": reason, "required_scope": scope}}


@pytest.mark.security("AC-1", "TOK-4")
class TestScopeTable:
    def test_table_covers_every_operation(self):
        # EXPECTED covers the OpenAPI document (tests/access_control/expected/).
        assert set(SCOPES) == set(EXPECTED)

    def test_the_app_declares_the_table(self, app):
        assert declared_scopes(app) == SCOPES

    def test_every_operation_taking_a_token_documents_401_and_insufficient_scope(self, app):
        undocumented = [
            f"{method} {path}"
            for path, item in app.openapi()["paths"].items()
            for method, operation in item.items()
            if operation["security"]
            and (
                "401" not in operation["responses"]
                or "INSUFFICIENT_SCOPE" not in operation["responses"]["403"]["description"]
            )
        ]
        assert undocumented == []

    def test_the_login_form_takes_no_token(self):
        assert SCOPES[LOGIN] == NONE


@pytest.mark.security("AC-1", "TOK-4")
class TestApiTokenCallers:
    async def test_every_operation_answers_api_tokens_as_the_scope_table_says(
        self, client, session
    ):
        calls = await run_token_matrix(client, session)

        mismatches = []
        for kind, item in calls:
            need = SCOPES[item.operation]
            if kind == EXACT:
                # The owner's role decides, exactly as for a login token of that role.
                want: tuple[int, Any] = (expected_status(item), None)
                got: tuple[int, Any] = (item.response.status_code, None)
            else:
                want = (403, refusal(need))
                got = (item.response.status_code, item.response.json())
            if got != want:
                mismatches.append(
                    f"{item.operation[0]} {item.operation[1]} as {item.caller} with {kind}"
                    f"{' (unknown target)' if item.unknown_target else ''}: "
                    f"expected {want}, got {item.response.status_code} {item.response.text[:200]}"
                )
        assert mismatches == []
        scoped = [op for op, need in SCOPES.items() if isinstance(need, Scope)]
        session_only = [op for op, need in SCOPES.items() if need == SESSION]
        targets = sum(1 + ("{" in path) for _, path in scoped) * 2
        targets += sum(1 + ("{" in path) for _, path in session_only)
        assert len(calls) == len(TOKEN_CALLERS) * targets
