"""Examples of the registration schemas in the OpenAPI document (the story of api.examples)."""

from api.events.examples import EVENT_PUBLIC
from api.examples import ADA_ID, EVENT_ID, REGISTRATION_ID
from api.users.examples import ADA_PUBLIC

CHECKIN_CODE = "7K3QX9M2PD"

# Ada's seat, just taken: no check-in yet.
REGISTRATION = {
    "id": REGISTRATION_ID,
    "event_id": EVENT_ID,
    "user_id": ADA_ID,
    "status": "CONFIRMED",
    "waitlist_position": None,
    "created_at": "2030-03-02T11:20:05Z",
    "promoted_at": None,
    "checked_in_at": None,
    "cancelled_at": None,
    "offer_expires_at": None,
}
CHECKED_IN = {**REGISTRATION, "checked_in_at": "2030-03-19T16:52:31Z"}
OWNER_VIEW = {**REGISTRATION, "checkin_code": CHECKIN_CODE}
WAITLISTED = {
    **REGISTRATION,
    "status": "WAITLISTED",
    "waitlist_position": 2,
    "checkin_code": None,
}
OWN_EVENT_REGISTRATION = {**OWNER_VIEW, "in_directory": True}
OWN_REGISTRATION = {**OWNER_VIEW, "event": EVENT_PUBLIC}
ATTENDEE = {**CHECKED_IN, "user": ADA_PUBLIC}
CHECK_IN_BY_CODE = {"code": "7k3q-x9m2-pd"}
