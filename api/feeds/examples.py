"""Examples of the calendar feed schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import BASE_URL

FEED = {
    "url": f"{BASE_URL}/api/v1/calendar/C7PZvTVe1OjUeuBQtx4sr6pvtD-pp0JS.ics",
    "created_at": "2030-01-12T19:20:31Z",
}
