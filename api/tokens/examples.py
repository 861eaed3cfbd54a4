"""Examples of the API token schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import API_TOKEN_ID

TOKEN = "em_pat_TdClOiOJGy8vba1VfMId47ROQtll5lnGUtmiky9Rife"

# expires_at left out: 365 days from now.
TOKEN_CREATE = {"name": "Door scanner", "scopes": ["registrations:read", "registrations:write"]}
TOKEN_PUBLIC = {
    "id": API_TOKEN_ID,
    "name": "Door scanner",
    "scopes": ["registrations:read", "registrations:write"],
    "expires_at": "2031-03-01T09:00:00Z",
    "token_prefix": TOKEN[:12],
    "created_at": "2030-03-01T09:00:00Z",
    "last_used_at": "2030-03-19T16:52:31Z",
}
TOKEN_CREATED = {**TOKEN_PUBLIC, "last_used_at": None, "token": TOKEN}
