"""The OpenAPI document's `webhooks` section: one entry per domain-event type, its payload
`{id, type, occurred_at, data}` with the public model of that type as `data`, and the ping of
POST /webhooks/{id}/test."""

from typing import Any

import pytest

from api.main import create_app
from api.outbox.models import DomainEventType

DATA = {
    "event.created": "EventPublic",
    "event.submitted": "EventPublic",
    "event.published": "EventPublic",
    "event.rejected": "EventPublic",
    "event.updated": "EventPublic",
    "event.cancelled": "EventPublic",
    "event.deleted": "EventDeleted",
    "registration.confirmed": "Attendee",
    "registration.waitlisted": "Attendee",
    "registration.promoted": "Attendee",
    "registration.cancelled": "Attendee",
    "registration.checked_in": "Attendee",
    "user.created": "UserRead",
    "user.updated": "UserRead",
    "user.deleted": "UserDeleted",
    "webhook.test": "WebhookTestData",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(run_worker=False).openapi()


def test_every_domain_event_type_and_the_test_ping_is_listed(document):
    assert set(document["webhooks"]) == {t.value for t in DomainEventType}
    assert set(DATA) == set(document["webhooks"])


@pytest.mark.parametrize("event_type", sorted(DATA))
def test_each_payload_names_its_type_and_data_model(document, event_type):
    operation = document["webhooks"][event_type]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    schemas = document["components"]["schemas"]
    payload = schemas[body["$ref"].removeprefix("#/components/schemas/")]

    assert payload["required"] == ["id", "type", "occurred_at", "data"]
    assert payload["properties"]["id"]["type"] == "integer"
    assert payload["properties"]["type"]["const"] == event_type
    assert payload["properties"]["occurred_at"] == {
        "type": "string",
        "format": "date-time",
        "title": "Occurred At",
    }
    assert payload["properties"]["data"] == {"$ref": f"#/components/schemas/{DATA[event_type]}"}
    assert list(operation["responses"]) == ["2XX"]


def test_the_deleted_resources_keep_only_their_ids(document):
    schemas = document["components"]["schemas"]
    assert set(schemas["EventDeleted"]["properties"]) == {"id", "created_by"}
    assert set(schemas["UserDeleted"]["properties"]) == {"id"}
