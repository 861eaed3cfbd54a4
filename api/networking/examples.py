"""Examples of the networking schemas in the OpenAPI document (the story of api.examples)."""

from api.events.examples import TITLE
from api.examples import CONNECTION_ID, EVENT_ID
from api.users.examples import ADA_PUBLIC, KATHERINE_ID, KATHERINE_PUBLIC

DIRECTORY_MEMBERSHIP = {
    "event_id": EVENT_ID,
    "joined_at": "2030-03-19T17:05:12Z",
    "user": ADA_PUBLIC,
}
DIRECTORY_ENTRY = {"user": KATHERINE_PUBLIC, "joined_at": "2030-03-19T16:58:40Z"}
CONNECTION_CREATE = {"user_id": KATHERINE_ID}
CONNECTION_USER = {**KATHERINE_PUBLIC, "email": "katherine.johnson@example.com"}
CONNECTION = {
    "id": CONNECTION_ID,
    "event_id": EVENT_ID,
    "event_title": TITLE,
    "status": "ACCEPTED",
    "direction": "outgoing",
    "created_at": "2030-03-19T19:41:03Z",
    "accepted_at": "2030-03-19T20:02:57Z",
    "user": CONNECTION_USER,
}
PENDING_CONNECTION = {
    **CONNECTION,
    "status": "PENDING",
    "accepted_at": None,
    "user": {**KATHERINE_PUBLIC, "email": None},
}
EXPORTED_MEMBERSHIP = {
    "event_id": EVENT_ID,
    "event_title": TITLE,
    "joined_at": "2030-03-19T17:05:12Z",
}
