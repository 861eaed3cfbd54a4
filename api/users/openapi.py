"""The OpenAPI documentation of the /auth routes, which fastapi-users declares.

`documented(router)` gives each of its routes a summary, a description and our error answers
(one example per code, as every route has) before the app includes it; `document_auth_bodies`
adds examples to the request and answer schemas fastapi-users and FastAPI name (the login form,
the bodies of verify and reset-password, the bearer token), found through the operations that
use them, whatever their names.
"""

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, status
from fastapi.routing import APIRoute

from api.errors import AppError, Unauthorized
from api.openapi import JSON, complete_document, error_responses
from api.users.errors import (
    LoginAccountLocked,
    LoginBadCredentials,
    LoginUserNotVerified,
    RegisterInvalidPassword,
    RegisterUserAlreadyExists,
    ResetPasswordBadToken,
    ResetPasswordInvalidPassword,
    VerifyUserAlreadyVerified,
    VerifyUserBadToken,
)

EMAIL = "ada.lovelace@example.com"
PASSWORD = "correct horse battery staple"
# Tokens of the verification and reset emails (signed JWTs, as fastapi-users makes them).
EMAIL_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0ZjFjMmI3YS05ZDNlLTRhNmItOGMxZi0yZTVk"
    "N2E5YjNjNDAiLCJhdWQiOiJmYXN0YXBpLXVzZXJzOnZlcmlmeSIsImV4cCI6MTgwMDAwMDAwMH0.nH7d2Q8xR4"
    "kVb9mJ3sT6yL1pA5cE0gU2wZ8fXqO4iYk"
)
# The answers fastapi-users sends as JSON `null`: they say nothing but their status.
NULL_BODY = {"schema": {"type": "null", "examples": [None]}}


@dataclass(frozen=True)
class AuthRoute:
    summary: str
    description: str
    errors: tuple[type[AppError], ...] = ()
    # Answers to document instead of fastapi-users' own (status -> response).
    answers: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    status_code: int | None = None


# The answer of the routes that mail an account, which says nothing of whether it exists.
ACCEPTED_WHATEVER_THE_EMAIL: dict[int | str, dict[str, Any]] = {
    status.HTTP_202_ACCEPTED: {
        "description": "Accepted, whatever the email; the body is null",
        "content": {JSON: NULL_BODY},
    }
}

ROUTES = {
    "/login": AuthRoute(
        summary="Log in",
        description="Exchange an email and password for a bearer token: an OAuth2 password "
        "form whose `username` is the email. Send the token as `Authorization: Bearer "
        "<token>`; it lasts ACCESS_TOKEN_EXPIRE_MINUTES, until logout, or until the password "
        "changes. A deactivated account gets LOGIN_BAD_CREDENTIALS too; MAX_LOGIN_ATTEMPTS "
        "wrong passwords in a row lock the account (LOGIN_ACCOUNT_LOCKED), and the right one "
        "is then refused as well.",
        errors=(LoginBadCredentials, LoginUserNotVerified, LoginAccountLocked),
    ),
    "/logout": AuthRoute(
        summary="Log out",
        description="Revoke the login token the request carries: it is refused (401) from "
        "then on. Other tokens of the account keep working; API tokens cannot log out.",
        errors=(Unauthorized,),
        # The token is revoked and nothing is said: 204, as RevocableBearerTransport answers.
        status_code=status.HTTP_204_NO_CONTENT,
    ),
    "/register": AuthRoute(
        summary="Sign up",
        description="Create an account: role ANONYMOUS and not verified until the link of the "
        "verification email is followed. Passwords: 8 to 128 characters, not a common "
        "password, not the email; no composition rules. `role` and the is_* fields are not "
        "taken from the body. A nickname is generated when none is given.",
        errors=(RegisterUserAlreadyExists, RegisterInvalidPassword),
    ),
    "/request-verify-token": AuthRoute(
        summary="Request a verification email",
        description="Send a new verification email when the account exists and is not "
        "verified. The answer is the same whatever the email, so it tells no one which "
        "accounts exist.",
        answers=ACCEPTED_WHATEVER_THE_EMAIL,
    ),
    "/verify": AuthRoute(
        summary="Verify an email",
        description="Complete the verification with the token of the verification email: "
        "is_verified becomes true, and an ANONYMOUS account becomes AUTHENTICATED. A token "
        "already used may answer either error.",
        errors=(VerifyUserBadToken, VerifyUserAlreadyVerified),
    ),
    "/forgot-password": AuthRoute(
        summary="Request a password reset",
        description="Email a password reset link when the account exists. The answer, and "
        "its timing, are the same whatever the email.",
        answers=ACCEPTED_WHATEVER_THE_EMAIL,
    ),
    "/reset-password": AuthRoute(
        summary="Reset the password",
        description="Set a new password with the token of the reset email. It lifts a "
        "lockout and revokes every token issued before, API tokens included.",
        errors=(ResetPasswordBadToken, ResetPasswordInvalidPassword),
        answers={
            status.HTTP_200_OK: {
                "description": "The password is changed; the body is null",
                "content": {JSON: NULL_BODY},
            }
        },
    ),
}


def documented(router: APIRouter) -> APIRouter:
    """fastapi-users' `router`, each route with our summary, description and errors (in
    place of fastapi-users' error answers), before the app includes it."""
    for route in router.routes:
        assert isinstance(route, APIRoute)
        doc = ROUTES[route.path]
        route.summary = doc.summary
        route.description = doc.description
        kept = {code: r for code, r in route.responses.items() if not 400 <= int(code) < 600}
        route.responses = {**kept, **doc.answers, **error_responses(*doc.errors)}
        if doc.status_code is not None:
            route.status_code = doc.status_code
            route.responses.pop(status.HTTP_200_OK, None)
    return router


# Examples of the schemas of the auth routes that are not ours: (path, where) -> example.
BODY_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/login", "request"): {"username": EMAIL, "password": PASSWORD},
    ("/login", "200"): {
        "access_token": "pV3q8Zt0wXyH2rK7mN4bC6dF1gJ9sL5aE8uT0iO3yQw",
        "token_type": "bearer",
    },
    ("/request-verify-token", "request"): {"email": EMAIL},
    ("/verify", "request"): {"token": EMAIL_TOKEN},
    ("/forgot-password", "request"): {"email": EMAIL},
    ("/reset-password", "request"): {"token": EMAIL_TOKEN, "password": PASSWORD},
}


def _schema_of(operation: dict[str, Any], where: str) -> dict[str, Any]:
    if where == "request":
        content = operation["requestBody"]["content"]
    else:
        content = operation["responses"][where]["content"]
    [media] = content.values()
    return dict(media["schema"])


def document_auth_bodies(app: FastAPI, *, prefix: str) -> None:
    """Examples on the schemas of the /auth routes that fastapi-users and FastAPI name."""

    def complete(schema: dict[str, Any]) -> None:
        components = schema["components"]["schemas"]
        for (path, where), example in BODY_EXAMPLES.items():
            operation = schema["paths"][f"{prefix}{path}"]["post"]
            name = _schema_of(operation, where)["$ref"].rsplit("/", 1)[-1]
            components[name]["examples"] = [example]
            # fastapi-users' own example of the token is a JWT; ours are opaque.
            operation["responses"].get(where, {}).get("content", {}).get(JSON, {}).pop(
                "example", None
            )

    complete_document(app, complete)
