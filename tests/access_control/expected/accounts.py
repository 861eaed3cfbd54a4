"""AC-1 expectations for authentication, accounts and profiles, API tokens and calendar feeds."""

from tests.access_control.callers import ADMIN, ANONYMOUS, MANAGER, UNVERIFIED, USER, everyone

AUTH_AND_USERS: dict[tuple[str, str], dict[str, int]] = {
    # Open to every caller, a token or not (API.md, Auth): a fresh address, a wrong password, a
    # token that is not one.
    ("POST", "/api/v1/auth/register"): everyone(201),
    ("POST", "/api/v1/auth/login"): everyone(400),
    ("POST", "/api/v1/auth/request-verify-token"): everyone(202),
    ("POST", "/api/v1/auth/verify"): everyone(400),
    ("POST", "/api/v1/auth/forgot-password"): everyone(202),
    ("POST", "/api/v1/auth/reset-password"): everyone(400),
    ("GET", "/health"): everyone(200),
    ("GET", "/ready"): everyone(200),
    # Any token may log out, also one whose owner is unverified again after an email change.
    ("POST", "/api/v1/auth/logout"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("GET", "/api/v1/users/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("PATCH", "/api/v1/users/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    # Another admin exists throughout, so an admin may leave too.
    ("DELETE", "/api/v1/users/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("GET", "/api/v1/profiles/{nickname}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/users"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/users"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 201,
    },
    ("GET", "/api/v1/users/{user_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("PATCH", "/api/v1/users/{user_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("DELETE", "/api/v1/users/{user_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 204,
    },
    ("PUT", "/api/v1/users/{user_id}/role"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    ("PUT", "/api/v1/users/{user_id}/professional"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/users/{user_id}/unlock"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
}

TOKENS_AND_FEEDS: dict[tuple[str, str], dict[str, int]] = {
    # Personal API tokens (API-integrations.md): the caller's own; DELETE on one of theirs.
    ("POST", "/api/v1/users/me/api-tokens"): {
        ANONYMOUS: 401,
        UNVERIFIED: 201,
        USER: 201,
        MANAGER: 201,
        ADMIN: 201,
    },
    ("GET", "/api/v1/users/me/api-tokens"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("DELETE", "/api/v1/users/me/api-tokens/{token_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    # The personal calendar feed (API-integrations.md): the caller's own URL; the feed itself is
    # opened by the token in its URL, whoever calls (an unknown token: 404).
    ("GET", "/api/v1/users/me/calendar-feed"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/users/me/calendar-feed/rotate"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/calendar/{feed_token}.ics"): everyone(200),
}
