"""Examples of the test clock's schemas in the OpenAPI document (the story of api.examples)."""

CLOCK_SET = {"now": "2030-03-19T15:00:00Z"}
CLOCK_STATE = {"now": "2030-03-19T15:00:00Z", "offset_seconds": 103723200.0}
JOB_RUN = {"job": "send_event_reminders", "ran_at": "2030-03-19T15:00:00.412Z", "count": 1}
