"""The OpenAPI document as a reference to learn from: every operation summarised, described
and listing its errors, one example per error code, examples of every request and answer body
that validate against their schemas, and a valid OpenAPI 3.1 document.

The error codes of each operation are the contract's (API.md, API-integrations.md,
API-attendees.md), written out below: a route added without its line here fails, and so does a
code the document leaves out.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate
from pydantic import BaseModel
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from api import clock
from api.examples import EXAMPLE_NOW, declared_examples
from api.idempotency.middleware import honours_idempotency_key
from api.main import create_app
from api.openapi import VALIDATION_EXAMPLE
from api.ratelimit import THROTTLED_PATHS

# The codes each operation answers beyond the stack's own (401, 403 INSUFFICIENT_SCOPE, 413,
# 429, 503 and the Idempotency-Key answers, checked for every operation below): one line per
# operation (indented lines go on with the one above), `status CODE ...` groups, `-` for none.
CONTRACT = """
POST   /api/v1/auth/login
       400 LOGIN_BAD_CREDENTIALS LOGIN_USER_NOT_VERIFIED LOGIN_ACCOUNT_LOCKED
POST   /api/v1/auth/logout               -
POST   /api/v1/auth/register             400 REGISTER_USER_ALREADY_EXISTS REGISTER_INVALID_PASSWORD
POST   /api/v1/auth/request-verify-token  -
POST   /api/v1/auth/verify               400 VERIFY_USER_BAD_TOKEN VERIFY_USER_ALREADY_VERIFIED
POST   /api/v1/auth/forgot-password      -
POST   /api/v1/auth/reset-password
       400 RESET_PASSWORD_BAD_TOKEN RESET_PASSWORD_INVALID_PASSWORD
GET    /api/v1/users/me                  -
PATCH  /api/v1/users/me
       400 UPDATE_USER_EMAIL_ALREADY_EXISTS UPDATE_USER_INVALID_PASSWORD CURRENT_PASSWORD_INVALID
       409 NICKNAME_TAKEN
DELETE /api/v1/users/me                  409 LAST_ADMIN
GET    /api/v1/users/me/registrations    -
GET    /api/v1/users/me/registrations/{registration_id}  404 REGISTRATION_NOT_FOUND
GET    /api/v1/users/me/registrations/{registration_id}/ticket.png
       404 REGISTRATION_NOT_FOUND  409 NOT_CONFIRMED
GET    /api/v1/users/me/export           -
GET    /api/v1/users/me/calendar-feed    -
POST   /api/v1/users/me/calendar-feed/rotate  -
GET    /api/v1/calendar/{feed_token}.ics  404 CALENDAR_FEED_NOT_FOUND
GET    /api/v1/users/me/api-tokens       -
POST   /api/v1/users/me/api-tokens       409 API_TOKEN_LIMIT_REACHED
DELETE /api/v1/users/me/api-tokens/{token_id}  404 API_TOKEN_NOT_FOUND
GET    /api/v1/profiles/{nickname}       403 FORBIDDEN  404 USER_NOT_FOUND
GET    /api/v1/users                     403 FORBIDDEN
POST   /api/v1/users
       403 FORBIDDEN  400 REGISTER_USER_ALREADY_EXISTS REGISTER_INVALID_PASSWORD
GET    /api/v1/users/{user_id}           403 FORBIDDEN  404 USER_NOT_FOUND
PATCH  /api/v1/users/{user_id}
       403 FORBIDDEN  404 USER_NOT_FOUND  409 NICKNAME_TAKEN LAST_ADMIN
DELETE /api/v1/users/{user_id}           403 FORBIDDEN  404 USER_NOT_FOUND  409 LAST_ADMIN
PUT    /api/v1/users/{user_id}/role
       403 FORBIDDEN CANNOT_CHANGE_OWN_ROLE  404 USER_NOT_FOUND  409 LAST_ADMIN
PUT    /api/v1/users/{user_id}/professional  403 FORBIDDEN  404 USER_NOT_FOUND
POST   /api/v1/users/{user_id}/unlock    403 FORBIDDEN  404 USER_NOT_FOUND
POST   /api/v1/events                    403 FORBIDDEN
GET    /api/v1/events                    -
GET    /api/v1/events/{event_id}         404 EVENT_NOT_FOUND
PATCH  /api/v1/events/{event_id}
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND
       409 CAPACITY_BELOW_REGISTERED INVALID_EVENT_TRANSITION  412 PRECONDITION_FAILED
DELETE /api/v1/events/{event_id}
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND  409 INVALID_EVENT_TRANSITION PART_OF_SERIES
POST   /api/v1/events/{event_id}/approve
       403 FORBIDDEN CANNOT_REVIEW_OWN_EVENT  404 EVENT_NOT_FOUND
       409 INVALID_EVENT_TRANSITION PART_OF_SERIES
POST   /api/v1/events/{event_id}/reject
       403 FORBIDDEN CANNOT_REVIEW_OWN_EVENT  404 EVENT_NOT_FOUND
       409 INVALID_EVENT_TRANSITION PART_OF_SERIES
POST   /api/v1/events/{event_id}/submit
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND  409 INVALID_EVENT_TRANSITION PART_OF_SERIES
POST   /api/v1/events/{event_id}/cancel
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND  409 INVALID_EVENT_TRANSITION
GET    /api/v1/events/{event_id}/calendar.ics  404 EVENT_NOT_FOUND
POST   /api/v1/series                    403 FORBIDDEN  422 INVALID_RRULE
GET    /api/v1/series/{series_id}        404 SERIES_NOT_FOUND
DELETE /api/v1/series/{series_id}
       403 NOT_EVENT_OWNER  404 SERIES_NOT_FOUND  409 INVALID_EVENT_TRANSITION
POST   /api/v1/series/{series_id}/approve
       403 FORBIDDEN CANNOT_REVIEW_OWN_EVENT  404 SERIES_NOT_FOUND  409 INVALID_EVENT_TRANSITION
POST   /api/v1/series/{series_id}/reject
       403 FORBIDDEN CANNOT_REVIEW_OWN_EVENT  404 SERIES_NOT_FOUND  409 INVALID_EVENT_TRANSITION
POST   /api/v1/series/{series_id}/submit
       403 NOT_EVENT_OWNER  404 SERIES_NOT_FOUND  409 INVALID_EVENT_TRANSITION
POST   /api/v1/series/{series_id}/cancel
       403 NOT_EVENT_OWNER  404 SERIES_NOT_FOUND  409 INVALID_EVENT_TRANSITION
POST   /api/v1/events/{event_id}/registrations
       403 FORBIDDEN  404 EVENT_NOT_FOUND  409 ALREADY_REGISTERED EVENT_NOT_OPEN
GET    /api/v1/events/{event_id}/registrations  403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND
GET    /api/v1/events/{event_id}/registrations/me  404 EVENT_NOT_FOUND REGISTRATION_NOT_FOUND
DELETE /api/v1/events/{event_id}/registrations/me  404 EVENT_NOT_FOUND REGISTRATION_NOT_FOUND
POST   /api/v1/events/{event_id}/registrations/me/accept
       404 EVENT_NOT_FOUND REGISTRATION_NOT_FOUND  409 OFFER_EXPIRED NO_OPEN_OFFER
POST   /api/v1/events/{event_id}/registrations/me/decline
       404 EVENT_NOT_FOUND REGISTRATION_NOT_FOUND  409 OFFER_EXPIRED NO_OPEN_OFFER
POST   /api/v1/events/{event_id}/registrations/{registration_id}/check-in
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND REGISTRATION_NOT_FOUND
       409 ALREADY_CHECKED_IN NOT_CONFIRMED
POST   /api/v1/events/{event_id}/check-in
       403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND CHECKIN_CODE_NOT_FOUND
       409 NOT_CONFIRMED ALREADY_CHECKED_IN
PUT    /api/v1/events/{event_id}/directory/me  403 NOT_CONFIRMED_ATTENDEE  404 EVENT_NOT_FOUND
DELETE /api/v1/events/{event_id}/directory/me  404 EVENT_NOT_FOUND
GET    /api/v1/events/{event_id}/directory  403 NOT_IN_DIRECTORY  404 EVENT_NOT_FOUND
POST   /api/v1/events/{event_id}/connections
       422 CANNOT_CONNECT_TO_SELF  403 NOT_IN_DIRECTORY  404 EVENT_NOT_FOUND ATTENDEE_NOT_FOUND
       409 NOT_CHECKED_IN ALREADY_CONNECTED CONNECTION_PENDING
POST   /api/v1/connections/{connection_id}/accept  403 NOT_ADDRESSEE  404 CONNECTION_NOT_FOUND
POST   /api/v1/connections/{connection_id}/decline
       403 NOT_ADDRESSEE  404 CONNECTION_NOT_FOUND  409 ALREADY_CONNECTED
DELETE /api/v1/connections/{connection_id}  404 CONNECTION_NOT_FOUND
GET    /api/v1/users/me/connections      -
GET    /api/v1/users/me/connections.vcf  -
GET    /api/v1/events/{event_id}/stats   403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND
GET    /api/v1/events/{event_id}/stats.png  403 NOT_EVENT_OWNER  404 EVENT_NOT_FOUND
GET    /api/v1/notifications             -
POST   /api/v1/notifications/read-all    -
POST   /api/v1/notifications/{notification_id}/read  404 NOTIFICATION_NOT_FOUND
GET    /api/v1/users/me/notification-preferences  -
PATCH  /api/v1/users/me/notification-preferences  -
GET    /api/v1/audit-log                 403 FORBIDDEN
GET    /api/v1/admin/stats               403 FORBIDDEN
POST   /api/v1/webhooks
       403 FORBIDDEN  409 WEBHOOK_LIMIT_REACHED  422 WEBHOOK_URL_NOT_ALLOWED
GET    /api/v1/webhooks                  403 FORBIDDEN
GET    /api/v1/webhooks/{webhook_id}     403 FORBIDDEN  404 WEBHOOK_NOT_FOUND
PATCH  /api/v1/webhooks/{webhook_id}
       403 FORBIDDEN  404 WEBHOOK_NOT_FOUND  422 WEBHOOK_URL_NOT_ALLOWED
DELETE /api/v1/webhooks/{webhook_id}     403 FORBIDDEN  404 WEBHOOK_NOT_FOUND
POST   /api/v1/webhooks/{webhook_id}/rotate-secret  403 FORBIDDEN  404 WEBHOOK_NOT_FOUND
POST   /api/v1/webhooks/{webhook_id}/test  403 FORBIDDEN  404 WEBHOOK_NOT_FOUND
GET    /api/v1/webhooks/{webhook_id}/deliveries  403 FORBIDDEN  404 WEBHOOK_NOT_FOUND
GET    /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}
       403 FORBIDDEN  404 WEBHOOK_NOT_FOUND DELIVERY_NOT_FOUND
POST   /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay
       403 FORBIDDEN  404 WEBHOOK_NOT_FOUND DELIVERY_NOT_FOUND  409 DELIVERY_PENDING
PUT    /api/v1/testing/clock             403 FORBIDDEN
DELETE /api/v1/testing/clock             403 FORBIDDEN
POST   /api/v1/testing/jobs/{name}       403 FORBIDDEN  404 JOB_NOT_FOUND
GET    /health                           -
GET    /ready                            -
"""
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# A code, at the start of a description or after one of its commas.
CODE = re.compile(r"(?:^|, )([A-Z][A-Z0-9_]{2,})\b")


def contract() -> dict[tuple[str, str], set[tuple[str, str]]]:
    table: dict[tuple[str, str], set[tuple[str, str]]] = {}
    operation = ("", "")
    for line in CONTRACT.strip().splitlines():
        tokens = line.split()
        if not line[0].isspace():
            operation, tokens = (tokens[0], tokens[1]), tokens[2:]
            assert operation not in table, line
            table[operation] = set()
        status = ""
        for token in tokens:
            if token.isdigit():
                status = token
            elif token != "-":
                table[operation].add((status, token))
    return table


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(run_worker=False).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def json_of(response: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = response.get("content", {}).get("application/json", {})
    return media


def error_answers(
    document: dict[str, Any],
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                yield method, path, status, response


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of `schema`, a schema of `document` (OpenAPI 3.1), whose
    references into the document's components resolve."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", DRAFT202012.create_resource(document)
    )
    rooted = json.loads(json.dumps(schema).replace('"#/components/', '"urn:openapi#/components/'))
    return Draft202012Validator(
        rooted, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def schema_examples(document: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """The examples a schema carries: its own, its reference's, or those of the branch of an
    anyOf that is not null (an optional body)."""
    resolved = resolve(document, schema)
    if "examples" in resolved:
        return list(resolved["examples"])
    branches = [b for b in resolved.get("anyOf", []) if b != {"type": "null"}]
    return [example for b in branches for example in schema_examples(document, b)]


# --- summaries and descriptions ---------------------------------------------------------------


def test_every_operation_has_a_summary_and_a_description(document):
    lacking = [
        f"{method} {path}"
        for method, path, operation in operations(document)
        if not operation.get("summary", "").strip() or not operation.get("description", "").strip()
    ]
    assert lacking == []


def test_every_summary_is_written_for_people(document):
    """Summaries are written, in sentence case ("Register for an event"): the one FastAPI
    derives from a handler's name is in Title Case ("Register For Event")."""
    derived = [
        f"{method} {path}: {operation['summary']}"
        for method, path, operation in operations(document)
        if operation["summary"] == operation["summary"].title()
    ]
    assert derived == []


# --- errors -----------------------------------------------------------------------------------


def test_the_contract_lists_every_operation(document):
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == set(contract())


def test_every_operation_documents_its_contract_errors(document):
    table = contract()
    missing = []
    for method, path, operation in operations(document):
        shown = {
            (status, code)
            for status, response in operation["responses"].items()
            for code in json_of(response).get("examples", {})
        }
        missing += [f"{method} {path} {s} {c}" for s, c in table[(method, path)] - shown]
    assert missing == []


def test_every_operation_documents_the_stack_answers(document):
    """503 on every API operation; 401 and 403 INSUFFICIENT_SCOPE where a token is taken; 413
    where a body is read; 429 where the throttle applies; the Idempotency-Key answers where it
    is honoured; FastAPI's 422 with an example wherever parameters or a body are read."""
    missing = []
    for method, path, operation in operations(document):
        expected = set()
        if path.startswith("/api/"):
            expected.add(("503", "SERVICE_UNAVAILABLE"))
        if operation["security"]:
            expected |= {("401", "UNAUTHORIZED"), ("403", "INSUFFICIENT_SCOPE")}
        if "requestBody" in operation:
            expected.add(("413", "REQUEST_TOO_LARGE"))
        if path in THROTTLED_PATHS:
            expected.add(("429", "TOO_MANY_REQUESTS"))
        if method == "POST" and honours_idempotency_key(method, path):
            expected |= {
                ("409", "IDEMPOTENCY_KEY_IN_USE"),
                ("422", "IDEMPOTENCY_KEY_REUSED"),
                ("422", "IDEMPOTENCY_KEY_INVALID"),
            }
        parameters = [p for p in operation.get("parameters", []) if p["name"] != "Idempotency-Key"]
        if "requestBody" in operation or parameters:
            expected.add(("422", VALIDATION_EXAMPLE))
        shown = {
            (status, code)
            for status, response in operation["responses"].items()
            for code in json_of(response).get("examples", {})
        }
        missing += [f"{method} {path} {s} {c}" for s, c in expected - shown]
    assert missing == []


def test_every_error_answer_has_one_example_per_code(document):
    """Each 4xx and 5xx: examples; each code its description names has one, keyed by the code
    and sent as that code; each example says what it means."""
    problems = []
    for method, path, status, response in error_answers(document):
        where = f"{method} {path} {status}"
        examples = json_of(response).get("examples", {})
        if not examples:
            problems.append(f"{where}: no example")
        named = set(CODE.findall(response["description"]))
        problems += [f"{where}: no example of {code}" for code in named - set(examples)]
        for key, example in examples.items():
            if not example.get("summary"):
                problems.append(f"{where} {key}: no summary")
            if "detail" not in example["value"]:
                continue  # not an error body (/ready's)
            detail = example["value"]["detail"]
            code = detail.get("code") if isinstance(detail, dict) else detail
            if key != VALIDATION_EXAMPLE and code != key:
                problems.append(f"{where} {key}: sent as {code}")
    assert problems == []


def test_every_error_example_matches_its_schema(document):
    invalid = []
    for method, path, status, response in error_answers(document):
        media = json_of(response)
        check = validator(document, media["schema"])
        for key, example in media.get("examples", {}).items():
            invalid += [
                f"{method} {path} {status} {key}: {error.message}"
                for error in check.iter_errors(example["value"])
            ]
    assert invalid == []


def test_error_details_are_documented(document):
    schemas = document["components"]["schemas"]
    detail = schemas["ErrorBody"]["properties"]["detail"]
    assert detail["description"]
    assert {"type": "string"} in detail["anyOf"]
    assert {"$ref": "#/components/schemas/ErrorDetail"} in detail["anyOf"]
    assert schemas["ErrorDetail"]["required"] == ["code", "reason"]
    assert all(p["description"] for p in schemas["ErrorDetail"]["properties"].values())


# --- bodies -----------------------------------------------------------------------------------


def bodies(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every request body, webhooks' included, and every JSON answer of a 2xx, with where it
    is."""
    for name, item in document["webhooks"].items():
        yield (
            f"webhook {name}",
            item["post"]["requestBody"]["content"]["application/json"]["schema"],
        )
    for method, path, operation in operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            yield f"{method} {path} request {media_type}", media["schema"]
        for status, response in operation["responses"].items():
            if status.startswith("2") and "schema" in json_of(response):
                yield f"{method} {path} {status}", json_of(response)["schema"]


def test_every_request_and_success_body_has_an_example(document):
    lacking = [where for where, schema in bodies(document) if not schema_examples(document, schema)]
    assert lacking == []


def test_every_body_example_matches_its_schema(document):
    invalid = []
    for where, schema in bodies(document):
        check = validator(document, schema)
        for example in schema_examples(document, schema):
            invalid += [f"{where}: {error.message}" for error in check.iter_errors(example)]
    assert invalid == []


def test_every_schema_example_matches_its_schema(document):
    """Those of the nested schemas too (an event inside a registration, ...)."""
    invalid = []
    for name, schema in document["components"]["schemas"].items():
        check = validator(document, schema)
        for example in schema.get("examples", []):
            invalid += [f"{name}: {error.message}" for error in check.iter_errors(example)]
    assert invalid == []


def models() -> list[type[BaseModel]]:
    create_app(run_worker=False)  # every model's module is imported

    def subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted(
        {m for m in subclasses(BaseModel) if m.__module__.startswith("api.")},
        key=lambda m: f"{m.__module__}.{m.__qualname__}",
    )


@pytest.mark.parametrize("model", [m for m in models() if declared_examples(m)], ids=str)
def test_model_examples_are_valid_input(model, monkeypatch):
    """Each model's examples pass its own validation too (the rules JSON Schema cannot say,
    such as ends_at after starts_at), on the story's date."""
    monkeypatch.setattr(clock, "now", lambda: EXAMPLE_NOW)
    declared = declared_examples(model)
    assert declared is not None
    for example in declared.values:
        model.model_validate(example)


# --- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_operations_without_a_token_say_so(document):
    public = sorted(f"{m} {p}" for m, p, op in operations(document) if op["security"] == [])
    assert "POST /api/v1/auth/login" in public
    assert "GET /health" in public
    assert all(item["post"]["security"] == [] for item in document["webhooks"].values())
