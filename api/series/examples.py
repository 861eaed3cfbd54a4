"""Examples of the series schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import ALAN_ID, GRACE_ID, SERIES_ID

TITLE = "Interview practice Tuesdays"

SERIES_CREATE = {
    "title": TITLE,
    "description": "Two hours of paired practice interviews, every Tuesday for ten weeks.",
    "event_type": "WORKSHOP",
    "starts_at": "2030-03-05T18:00:00+01:00",
    "ends_at": "2030-03-05T20:00:00+01:00",
    "timezone": "Europe/Berlin",
    "location": "Factory Berlin, Rheinsberger Str. 76/77, 10115 Berlin",
    "capacity": 12,
    "tags": ["career", "interviews"],
    "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=10",
}
SERIES_PUBLIC = {
    "id": SERIES_ID,
    "title": TITLE,
    "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=10",
    "timezone": "Europe/Berlin",
    "status": "PUBLISHED",
    "created_by": GRACE_ID,
    "reviewed_by": ALAN_ID,
    "review_feedback": None,
    "occurrence_count": 10,
    # 18:00 in Berlin: UTC+1 until the end of March, UTC+2 from then on.
    "first_starts_at": "2030-03-05T17:00:00Z",
    "last_starts_at": "2030-05-07T16:00:00Z",
    "created_at": "2030-02-18T14:30:00Z",
    "published_at": "2030-02-19T09:12:44Z",
    "cancelled_at": None,
}
