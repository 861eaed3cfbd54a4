"""Examples of the insight schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import EVENT_ID

# After the evening: 27 confirmed, 24 of them came; 6 ever waitlisted, 3 of them promoted.
EVENT_STATS = {
    "event_id": EVENT_ID,
    "capacity": 30,
    "registrations": {
        "confirmed": 27,
        "waitlisted": 3,
        "offered": 0,
        "cancelled": 4,
        "expired": 1,
        "checked_in": 24,
    },
    "no_show_rate": 0.1111,
    "waitlist_conversion": 0.5,
    "timeline": [
        {"date": "2030-03-01", "registered": 19, "cancelled": 0},
        {"date": "2030-03-02", "registered": 8, "cancelled": 1},
        {"date": "2030-03-03", "registered": 8, "cancelled": 4},
    ],
}
