"""The example of the personal data export in the OpenAPI document: Ada's, in the story of
api.examples (one of each record, the lists of the other examples)."""

from api.audit.examples import ROLE_CHANGED
from api.examples import ADA_ID
from api.networking.examples import CONNECTION, EXPORTED_MEMBERSHIP
from api.notifications.examples import NOTIFICATION
from api.registrations.examples import OWN_REGISTRATION
from api.tokens.examples import TOKEN_PUBLIC
from api.users.examples import ADA_READ

PREFERENCE = {"kind": "EVENT_REMINDER", "email": False, "in_app": True}
EXPORT = {
    "format_version": 1,
    "exported_at": "2030-03-20T07:45:00Z",
    "user": ADA_READ,
    "registrations": [OWN_REGISTRATION],
    # Ada proposed nothing herself: as a member she may not.
    "events_created": [],
    "series_created": [],
    "notifications": [NOTIFICATION],
    "notification_preferences": [PREFERENCE],
    # An admin's edit of Ada's profile, naming her as the target.
    "audit_entries": [
        {
            **ROLE_CHANGED,
            "id": "f1a3c5e7-0b2d-4e6f-8a1c-3e5a7c9e1b24",
            "at": "2030-02-02T10:14:09Z",
            "action": "USER_UPDATED_BY_STAFF",
            "target_id": ADA_ID,
            "before": {"linkedin_profile_url": None},
            "after": {"linkedin_profile_url": ADA_READ["linkedin_profile_url"]},
            "reason": "Asked for by the member",
        }
    ],
    "api_tokens": [TOKEN_PUBLIC],
    "webhooks": [],
    "connections": [CONNECTION],
    "directory_memberships": [EXPORTED_MEMBERSHIP],
}
