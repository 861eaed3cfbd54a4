"""EXPECTED: every operation of the OpenAPI document, by caller, written out by hand from API.md
(AC-1). One table per endpoint group, merged in this order (the order the matrix calls them in).
A new route gets its row in the group its path belongs to."""

from tests.access_control.expected.accounts import AUTH_AND_USERS, TOKENS_AND_FEEDS
from tests.access_control.expected.attendees import ATTENDEES
from tests.access_control.expected.events import EVENTS_AND_REGISTRATIONS, SERIES_AND_INSIGHTS
from tests.access_control.expected.operations import (
    NOTIFICATIONS_AND_ADMINISTRATION,
    TESTING,
    WEBHOOKS,
)

GROUPS: tuple[dict[tuple[str, str], dict[str, int]], ...] = (
    AUTH_AND_USERS,
    TOKENS_AND_FEEDS,
    EVENTS_AND_REGISTRATIONS,
    SERIES_AND_INSIGHTS,
    ATTENDEES,
    NOTIFICATIONS_AND_ADMINISTRATION,
    TESTING,
    WEBHOOKS,
)

# Every operation of the OpenAPI document, by caller. 401 carries WWW-Authenticate.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    operation: row for group in GROUPS for operation, row in group.items()
}
# No operation is in two groups.
assert len(EXPECTED) == sum(len(group) for group in GROUPS)
