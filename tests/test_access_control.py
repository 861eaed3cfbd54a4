"""AC-1 and AC-2 (SECURITY.md): who may call what, and what no answer ever shows.

AC-1: every operation of the OpenAPI document (auth, accounts, events, registrations,
notifications, audit, administration, operations) is called as each kind of caller with a
harmless valid request, and must answer exactly what API.md says. Event
operations act on a fresh event of another manager, in the status the operation needs (pending
for approve/reject/delete, rejected for submit, published for the rest); the creator's own rights
are tested in tests/events. The table, EXPECTED in tests/access_control/expected/ (a module per
endpoint group), is written out by hand from API.md; a test checks it covers every operation in
the OpenAPI document, so a new route without an expectation fails the suite. The calls are made
by tests/access_control/matrix.py.

AC-2: every JSON body produced by those calls is scanned for password hashes, lockout and
reset-mail counters, access tokens, other users' check-in codes (PRIV-1) and (for callers who
are not staff) other users' emails.
"""

import hashlib

import pytest

from tests.access_control.callers import ANONYMOUS, CALLERS, STAFF
from tests.access_control.expected import EXPECTED
from tests.access_control.matrix import (
    CREATE_API_TOKEN,
    FEED_URL_ANSWERS,
    LEAKING_KEYS,
    OWN_REGISTRATION,
    accepted_contacts,
    checkin_codes,
    content_type,
    documented_operations,
    expected_status,
    feed_token_of,
    run_matrix,
    shows_webhook_secret,
)


class TestAccessControlTable:
    @pytest.mark.security("AC-1")
    def test_table_covers_every_operation(self, app):
        assert set(EXPECTED) == documented_operations(app)
        assert all(set(row) == set(CALLERS) for row in EXPECTED.values())

    @pytest.mark.security("AC-1")
    async def test_every_operation_answers_as_api_md_says(self, client, session):
        run = await run_matrix(client, session)

        mismatches = [
            f"{item.operation[0]} {item.operation[1]} as {item.caller}"
            f"{' (unknown target)' if item.unknown_target else ''}: "
            f"expected {expected_status(item)}, got {item.response.status_code} "
            f"{item.response.text[:200]}"
            for item in run.calls
            if item.response.status_code != expected_status(item)
        ]
        assert mismatches == []
        with_target = sum("{" in path for _, path in EXPECTED)
        assert len(run.calls) == len(CALLERS) * (len(EXPECTED) + with_target)

    @pytest.mark.security("AC-1")
    async def test_401_answers_ask_for_a_bearer_token(self, client, session):
        run = await run_matrix(client, session)

        unauthorized = [item for item in run.calls if expected_status(item) == 401]
        assert {item.response.status_code for item in unauthorized} == {401}
        assert {item.caller for item in unauthorized} == {ANONYMOUS}
        assert [
            (item.response.headers.get("WWW-Authenticate"), item.response.json())
            for item in unauthorized
        ] == [("Bearer", {"detail": "UNAUTHORIZED"})] * len(unauthorized)

    @pytest.mark.security("AC-2")
    async def test_no_response_leaks_secrets_or_emails(self, client, session):
        run = await run_matrix(client, session)
        tokens = [account.token for account in run.accounts if account.token]
        assert len(tokens) == len(run.accounts)

        # API tokens are shown once, in the 201 that creates them; no answer shows a stored hash.
        created = [
            item.response
            for item in run.calls
            if item.operation == CREATE_API_TOKEN and item.response.status_code == 201
        ]
        api_tokens = [response.json()["token"] for response in created]
        assert len(api_tokens) == len(CALLERS) - 1
        hashes = [hashlib.sha256(token.encode()).hexdigest() for token in [*tokens, *api_tokens]]
        codes = await checkin_codes(session)
        contacts = await accepted_contacts(session)
        # The codes scanned for include those shown to their registrants, one per caller.
        shown_codes = {
            item.response.json()["checkin_code"]
            for item in run.calls
            if item.operation == OWN_REGISTRATION and item.response.status_code == 200
        }
        assert len(shown_codes) == len(CALLERS) - 1
        assert shown_codes <= {code for _, code in codes}
        # Feed tokens (PRIV-1): in the two answers that show the caller's feed URL, nowhere else.
        feed_answers = [
            item.response
            for item in run.calls
            if item.operation in FEED_URL_ANSWERS and item.response.status_code == 200
        ]
        feed_tokens = [feed_token_of(response.json()["url"]) for response in feed_answers]
        assert len(feed_tokens) == 2 * (len(CALLERS) - 1)

        leaks = []
        bodies = 0
        for item in run.calls:
            if not item.response.content:
                continue
            assert item.response.headers["content-type"] == content_type(item)
            bodies += 1
            text = item.response.text
            shown = [t for t in api_tokens if item.response not in created or t not in text]
            feeds = [t for t in feed_tokens if item.response not in feed_answers or t not in text]
            keys = [k for k in LEAKING_KEYS if k != "whsec_" or not shows_webhook_secret(item)]
            secrets = [*keys, *tokens, *hashes, *shown, *feeds]
            # A check-in code is its registrant's alone, whoever else calls (PRIV-1).
            caller_id = item.actor.id if item.actor else None
            secrets += [code for holder, code in codes if holder != caller_id]
            if item.caller not in STAFF:
                # The caller's own email, and those of their contacts (DIR-1), may be shown.
                shown_to = contacts.get(item.actor.id, set()) if item.actor else set()
                own = item.actor.email if item.actor else None
                secrets += [
                    a.email for a in run.accounts if a.email != own and a.id not in shown_to
                ]
            leaks += [
                f"{item.operation} as {item.caller}: {secret}"
                for secret in secrets
                if secret.lower() in text.lower()
            ]
        assert leaks == []
        # Each feed answer shows its caller's own URL and no other.
        shown_feeds = [[t for t in feed_tokens if t in response.text] for response in feed_answers]
        assert shown_feeds == [[token] for token in feed_tokens]
        no_content = sum(
            1
            for item in run.calls
            if expected_status(item) == 204 and item.response.status_code == 204
        )
        assert bodies == len(run.calls) - no_content
