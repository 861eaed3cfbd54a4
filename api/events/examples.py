"""Examples of the event schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import ALAN_ID, EVENT_ID, GRACE_ID

TITLE = "Mock interviews: backend engineering"

EVENT_CREATE = {
    "title": TITLE,
    "description": "Forty-five minutes one to one with an engineer of a partner company, then "
    "written feedback. We pair you by stack.",
    "event_type": "MOCK_INTERVIEW",
    "starts_at": "2030-03-19T18:00:00+01:00",
    "ends_at": "2030-03-19T21:00:00+01:00",
    "timezone": "Europe/Berlin",
    "location": "Factory Berlin, Rheinsberger Str. 76/77, 10115 Berlin",
    "capacity": 30,
    "registration_deadline": "2030-03-18T23:59:00+01:00",
    "requirements": "Bring a printed CV.",
    "tags": ["career", "backend", "interviews"],
    "waitlist_mode": "OFFER",
    "offer_hours": 12,
}
ONLINE_EVENT_CREATE = {
    "title": "Guest lecture: designing for failure",
    "event_type": "GUEST_LECTURE",
    "starts_at": "2030-04-02T16:00:00Z",
    "ends_at": "2030-04-02T17:30:00Z",
    "online_url": "https://meet.example.com/designing-for-failure",
}
EVENT_UPDATE = {"capacity": 40, "requirements": "Bring a printed CV and a laptop."}
EVENT_PUBLIC = {
    "id": EVENT_ID,
    "title": TITLE,
    "description": EVENT_CREATE["description"],
    "event_type": "MOCK_INTERVIEW",
    "starts_at": "2030-03-19T17:00:00Z",
    "ends_at": "2030-03-19T20:00:00Z",
    "timezone": "Europe/Berlin",
    "location": EVENT_CREATE["location"],
    "online_url": None,
    "capacity": 30,
    "registration_deadline": "2030-03-18T22:59:00Z",
    "requirements": "Bring a printed CV.",
    "tags": ["career", "backend", "interviews"],
    "waitlist_mode": "OFFER",
    "offer_hours": 12,
    "status": "PUBLISHED",
    "created_by": GRACE_ID,
    "reviewed_by": ALAN_ID,
    "review_feedback": None,
    "cancellation_reason": None,
    "series_id": None,
    "registered_count": 28,
    "waitlist_count": 3,
    "offered_count": 1,
    "spots_left": 2,
    "created_at": "2030-02-20T10:15:42Z",
    "updated_at": "2030-02-21T08:02:10Z",
    "published_at": "2030-02-21T08:02:10Z",
    "cancelled_at": None,
}
REVIEW_FEEDBACK = {"feedback": "Please name the partner companies and the room."}
CANCELLATION = {"reason": "The venue is closed for repairs; a new date follows."}
