"""AC-1 expectations for notifications, the audit log, administration, the test clock and jobs,
and webhooks."""

from tests.access_control.callers import ADMIN, ANONYMOUS, MANAGER, UNVERIFIED, USER

NOTIFICATIONS_AND_ADMINISTRATION: dict[tuple[str, str], dict[str, int]] = {
    # Notifications, audit log and administration.
    ("GET", "/api/v1/notifications"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    # On a notification of the caller's own.
    ("POST", "/api/v1/notifications/{notification_id}/read"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/notifications/read-all"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("GET", "/api/v1/users/me/notification-preferences"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("PATCH", "/api/v1/users/me/notification-preferences"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/audit-log"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    ("GET", "/api/v1/admin/stats"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
}

TESTING: dict[tuple[str, str], dict[str, int]] = {
    # The test clock and job triggers (API-attendees.md), which exist with ENVIRONMENT=test as
    # here: admins. The PUT sets the clock to the moment it is sent; the DELETE follows it.
    ("PUT", "/api/v1/testing/clock"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    ("DELETE", "/api/v1/testing/clock"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 204,
    },
    ("POST", "/api/v1/testing/jobs/{name}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
}

WEBHOOKS: dict[tuple[str, str], dict[str, int]] = {
    # Webhooks (API-integrations.md): managers and admins; on another manager's webhook (with
    # a finished delivery), which only an admin sees.
    ("POST", "/api/v1/webhooks"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 201,
        ADMIN: 201,
    },
    ("GET", "/api/v1/webhooks"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/webhooks/{webhook_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 200,
    },
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 200,
    },
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 204,
    },
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 200,
    },
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 202,
    },
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 200,
    },
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 200,
    },
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 404,
        ADMIN: 202,
    },
}
