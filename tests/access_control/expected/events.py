"""AC-1 expectations for events, their registrations and check-in, recurring series and event
insights."""

from tests.access_control.callers import ADMIN, ANONYMOUS, MANAGER, UNVERIFIED, USER, everyone

EVENTS_AND_REGISTRATIONS: dict[tuple[str, str], dict[str, int]] = {
    # Events and registrations (API.md, Events and Registrations).
    ("POST", "/api/v1/events"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 201,
        ADMIN: 201,
    },
    ("GET", "/api/v1/events"): {
        ANONYMOUS: 200,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/events/{event_id}"): {
        ANONYMOUS: 200,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("PATCH", "/api/v1/events/{event_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    # On a PENDING event: invisible to non-staff.
    ("DELETE", "/api/v1/events/{event_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 404,
        USER: 404,
        MANAGER: 403,
        ADMIN: 204,
    },
    ("POST", "/api/v1/events/{event_id}/approve"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/reject"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    # On a REJECTED event: only its creator may resubmit it.
    ("POST", "/api/v1/events/{event_id}/submit"): {
        ANONYMOUS: 401,
        UNVERIFIED: 404,
        USER: 404,
        MANAGER: 403,
        ADMIN: 403,
    },
    ("POST", "/api/v1/events/{event_id}/cancel"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    ("GET", "/api/v1/events/{event_id}/calendar.ics"): {
        ANONYMOUS: 200,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/registrations"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 201,
        MANAGER: 201,
        ADMIN: 201,
    },
    # The caller is registered first; an unverified registrant may still leave.
    ("DELETE", "/api/v1/events/{event_id}/registrations/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    # The caller's own registration of the event (API-attendees.md, Waitlist offers): the caller
    # is registered first (CONFIRMED), or holds an open offer for accept and decline.
    ("GET", "/api/v1/events/{event_id}/registrations/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/registrations/me/accept"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/registrations/me/decline"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/events/{event_id}/registrations"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/registrations/{registration_id}/check-in"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    # On a registration of the caller's own event (another manager's), by its check-in code.
    ("POST", "/api/v1/events/{event_id}/check-in"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
}

SERIES_AND_INSIGHTS: dict[tuple[str, str], dict[str, int]] = {
    # Recurring series (API-attendees.md), as the event routes: on a fresh series of another
    # manager, in the status the operation needs (as for events).
    ("POST", "/api/v1/series"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 201,
        ADMIN: 201,
    },
    ("GET", "/api/v1/series/{series_id}"): everyone(200),
    ("POST", "/api/v1/series/{series_id}/approve"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/series/{series_id}/reject"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/series/{series_id}/submit"): {
        ANONYMOUS: 401,
        UNVERIFIED: 404,
        USER: 404,
        MANAGER: 403,
        ADMIN: 403,
    },
    ("DELETE", "/api/v1/series/{series_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 404,
        USER: 404,
        MANAGER: 403,
        ADMIN: 204,
    },
    ("POST", "/api/v1/series/{series_id}/cancel"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 403,
        ADMIN: 200,
    },
    # Event insights (API-attendees.md): the creator, managers and admins.
    ("GET", "/api/v1/events/{event_id}/stats"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/events/{event_id}/stats.png"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
}
