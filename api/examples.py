"""Examples in the OpenAPI document: how a model declares them, and the ids they share.

A model shows its examples in its JSON schema with `model_config = examples(...)`; the domains'
`examples.py` modules hold the values. They tell one story, so that the document reads as one:
Ada (a member), Grace (a manager) and Alan (an admin) around Grace's mock-interview evening in
Berlin, on 19 March 2030. Request examples are valid input on the story's date (EXAMPLE_NOW).
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The type of a SQLModel's model_config, which sqlmodel names only here.
from sqlmodel._compat import SQLModelConfig

# "Now" in the story: request examples are valid input at this moment (starts_at ahead of it).
EXAMPLE_NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
BASE_URL = "https://events.example.com"

ADA_ID = "4f1c2b7a-9d3e-4a6b-8c1f-2e5d7a9b3c40"
GRACE_ID = "9b2e4d6f-1a3c-4e5b-8d7f-0c2a4e6b8d91"
ALAN_ID = "c3d5e7f9-2b4d-4f6a-9c8e-1d3f5a7c9e02"
EVENT_ID = "7a1d3f5b-8c2e-4d6f-9a1b-3c5e7f9a1b2d"
SERIES_ID = "8d5e2f61-3c1a-4b7e-9f20-6a4c8b1d2e37"
REGISTRATION_ID = "e4b6c8d0-3f5a-4b7c-9e1d-5f7a9c1e3b64"
CONNECTION_ID = "2c4e6a8b-0d1f-4a3c-8e5b-7d9f1b3d5f86"
NOTIFICATION_ID = "5a7c9e1b-3d5f-4b7a-9c1e-3f5b7d9a1c28"
AUDIT_ID = "0e2a4c6e-8b1d-4f3a-a5c7-9e1b3d5f7a93"
API_TOKEN_ID = "6d8f0b2d-4e6a-4c8e-b0d2-4f6a8c0e2a45"
WEBHOOK_ID = "3b5d7f9b-1c3e-4a5c-9e7b-1d3f5b7d9f17"
DELIVERY_ID = "8f0b2d4f-6a8c-4e0a-b2d4-6f8a0c2e4a69"


# FastAPI drops every null from the document it builds, nulls inside examples too, which
# would leave out the fields an example shows as null. The examples also travel as JSON text
# under this key, which api.openapi turns back into `examples` once the document is built.
EXAMPLES_JSON = "x-examples-json"


def set_examples(schema: dict[str, Any], values: Iterable[Mapping[str, Any]]) -> None:
    """Put `values` in `schema` as its examples (see EXAMPLES_JSON)."""
    schema["examples"] = [dict(value) for value in values]
    schema[EXAMPLES_JSON] = json.dumps(schema["examples"])


def restore_examples(schema: dict[str, Any]) -> None:
    """Turn the examples of EXAMPLES_JSON back into `examples` in a schema of the document."""
    encoded = schema.pop(EXAMPLES_JSON, None)
    if encoded is not None:
        schema["examples"] = json.loads(encoded)


@dataclass(frozen=True)
class Examples:
    """A model's examples (the `json_schema_extra` of its config), and for the item of a list,
    the path that lists it: Page[item] shows a page of the first example there."""

    values: tuple[Mapping[str, Any], ...]
    list_path: str | None = None

    def __call__(self, schema: dict[str, Any]) -> None:
        set_examples(schema, self.values)


def examples(*values: Mapping[str, Any], list_path: str | None = None) -> SQLModelConfig:
    """The `model_config` of a schema with these examples (`list_path`: see Examples)."""
    return SQLModelConfig(json_schema_extra=Examples(values, list_path))


def declared_examples(model: Any) -> Examples | None:
    """What `examples()` declared on `model` (None: nothing)."""
    config = getattr(model, "model_config", {})
    extra = config.get("json_schema_extra") if isinstance(config, Mapping) else None
    return extra if isinstance(extra, Examples) else None


def page_example(items: list[Mapping[str, Any]], path: str) -> dict[str, Any]:
    """The last of two pages of the list at `path` (20 a page), holding `items`."""

    def link(page: int) -> str:
        return f"{BASE_URL}{path}?page={page}&size=20"

    return {
        "items": [dict(item) for item in items],
        "total": 20 + len(items),
        "total_capped": False,
        "page": 2,
        "size": 20,
        "pages": 2,
        "links": {
            "self": link(2),
            "first": link(1),
            "last": link(2),
            "next": None,
            "prev": link(1),
        },
    }
