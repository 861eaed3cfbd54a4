"""Examples of the webhook schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import DELIVERY_ID, GRACE_ID, WEBHOOK_ID
from api.registrations.examples import REGISTRATION
from api.users.examples import ADA_PUBLIC

URL = "https://crm.example.com/hooks/event-manager"
EVENT_TYPES = ["registration.confirmed", "registration.cancelled", "event.cancelled"]

WEBHOOK_CREATE = {
    "url": URL,
    "description": "Attendees into our CRM",
    "event_types": EVENT_TYPES,
    "is_active": True,
}
WEBHOOK_UPDATE = {"event_types": [*EVENT_TYPES, "registration.checked_in"], "is_active": True}
WEBHOOK = {
    "id": WEBHOOK_ID,
    "owner_id": GRACE_ID,
    "url": URL,
    "description": "Attendees into our CRM",
    "event_types": EVENT_TYPES,
    "is_active": True,
    "failure_count": 0,
    "disabled_at": None,
    "disabled_reason": None,
    "created_at": "2030-02-21T08:30:00Z",
    "updated_at": "2030-02-21T08:30:00Z",
}
WEBHOOK_WITH_SECRET = {**WEBHOOK, "secret": "whsec_o8x4eSGoOHzlgHlSR6xwzVljBTVZJZBelT3eSYOn/B0="}
# A delivery's request body, as sent: the domain event, here the attendee-list row of a new
# registration.
DELIVERY_PAYLOAD = {
    "id": 18231,
    "type": "registration.confirmed",
    "occurred_at": "2030-03-02T11:20:05Z",
    "data": {**REGISTRATION, "user": ADA_PUBLIC},
}
DELIVERY = {
    "id": DELIVERY_ID,
    "webhook_id": WEBHOOK_ID,
    "event_id": 18231,
    "event_type": "registration.confirmed",
    "status": "SUCCEEDED",
    "payload": DELIVERY_PAYLOAD,
    "created_at": "2030-03-02T11:20:05Z",
    "next_attempt_at": None,
    "attempts": [
        {
            "attempted_at": "2030-03-02T11:20:06Z",
            "status_code": 200,
            "duration_ms": 143,
            "error": None,
            "response_body": '{"ok":true}',
        }
    ],
}
