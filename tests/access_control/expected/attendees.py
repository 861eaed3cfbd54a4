"""AC-1 expectations for what an attendee holds: their registrations and tickets, the networking
directory and connections, and the export of their data."""

from tests.access_control.callers import ADMIN, ANONYMOUS, MANAGER, UNVERIFIED, USER

ATTENDEES: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/api/v1/users/me/registrations"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    # On a CONFIRMED registration of the caller's own (API-integrations.md, Check-in codes).
    ("GET", "/api/v1/users/me/registrations/{registration_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/users/me/registrations/{registration_id}/ticket.png"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    # The networking directory and connections (API-attendees.md, DIR-1). PUT: the caller holds
    # a CONFIRMED registration of the event; the directory is read by the caller, who is not in
    # it (staff are); a request goes from a checked-in member (the caller) to another; accept,
    # decline and delete act on a request made to the caller; the vCards hold one contact.
    ("PUT", "/api/v1/events/{event_id}/directory/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("DELETE", "/api/v1/events/{event_id}/directory/me"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("GET", "/api/v1/events/{event_id}/directory"): {
        ANONYMOUS: 401,
        UNVERIFIED: 403,
        USER: 403,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/events/{event_id}/connections"): {
        ANONYMOUS: 401,
        UNVERIFIED: 201,
        USER: 201,
        MANAGER: 201,
        ADMIN: 201,
    },
    ("POST", "/api/v1/connections/{connection_id}/accept"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("POST", "/api/v1/connections/{connection_id}/decline"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("DELETE", "/api/v1/connections/{connection_id}"): {
        ANONYMOUS: 401,
        UNVERIFIED: 204,
        USER: 204,
        MANAGER: 204,
        ADMIN: 204,
    },
    ("GET", "/api/v1/users/me/connections"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    ("GET", "/api/v1/users/me/connections.vcf"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
    # The caller's own data, as a JSON file (PRIV-1).
    ("GET", "/api/v1/users/me/export"): {
        ANONYMOUS: 401,
        UNVERIFIED: 200,
        USER: 200,
        MANAGER: 200,
        ADMIN: 200,
    },
}
