"""Examples of the audit schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import ALAN_ID, AUDIT_ID, GRACE_ID

ROLE_CHANGED = {
    "id": AUDIT_ID,
    "at": "2030-01-20T09:31:12Z",
    "actor_id": ALAN_ID,
    "action": "ROLE_CHANGED",
    "target_type": "user",
    "target_id": GRACE_ID,
    "before": {"role": "AUTHENTICATED"},
    "after": {"role": "MANAGER"},
    "reason": "Runs the spring mock-interview series",
}
