"""Examples of the notification schemas in the OpenAPI document (the story of api.examples)."""

from api.events.examples import TITLE
from api.examples import EVENT_ID, NOTIFICATION_ID, REGISTRATION_ID

NOTIFICATION = {
    "id": NOTIFICATION_ID,
    "kind": "WAITLIST_OFFER",
    "title": f"A seat is offered to you: {TITLE}",
    "body": f'A seat at "{TITLE}" (Tue 19 Mar 2030, 18:00 to 21:00 (Europe/Berlin)) is offered '
    "to you until Sat 16 Mar 2030, 21:30 (Europe/Berlin): accept or decline it by then.",
    "data": {
        "event_id": EVENT_ID,
        "registration_id": REGISTRATION_ID,
        "offer_expires_at": "2030-03-16T20:30:00Z",
    },
    "read_at": None,
    "created_at": "2030-03-16T08:30:00Z",
}
# PATCH /users/me/notification-preferences: mail off for reminders, in-app off for offers.
PREFERENCE_CHANGES = {"EVENT_REMINDER": {"email": False}, "WAITLIST_OFFER": {"in_app": False}}
