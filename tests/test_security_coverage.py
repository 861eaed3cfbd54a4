"""Every property of SECURITY.md has a named test, and the AC-2 scanner really catches leaks.

A test proves a property by carrying its id: `@pytest.mark.security("AUTH-1")` on the test or
its class, or `pytestmark = pytest.mark.security(...)` in its module. A module this project does
not mark (tests/test_reliability.py) may instead name the id at the start of its docstring. The
ids are read from the test sources (not from a collected run), so any subset of the suite
checks the whole.
"""

import ast
import hashlib
import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.leaks import Caller, LeakScanner
from tests.support import ROOT

# A copy of SECURITY.md's ids (../shared may be absent where the suite runs, as in CI): its table,
# then each property built since, in the order it was built.
SECURITY_IDS = (
    "REG-1",
    "REG-2",
    "REG-3",
    "REG-4",
    "AUTH-1",
    "AUTH-2",
    "AUTH-3",
    "AUTH-4",
    "AUTH-5",
    "TOK-1",
    "TOK-2",
    "TOK-3",
    "RST-1",
    "AC-1",
    "AC-2",
    "AC-3",
    "AC-4",
    "VAL-1",
    "VAL-2",
    "CON-1",
    "CON-2",
    "CON-3",
    "REL-1",
    "REL-2",
    "REL-3",
    "REL-4",
    "TOK-4",
    "IDEM-1",
    "CONC-1",
    "PRIV-1",
    "WH-1",
    "SSRF-1",
    "OFF-1",
    "TEST-1",
    "DIR-1",
    "SCALE-1",
)
TESTS = ROOT / "tests"
ID_PATTERN = re.compile(r"\b([A-Z]{2,5}-\d+)\b")


def security_document() -> Path | None:
    for candidate in (ROOT.parent / "shared" / "SECURITY.md", Path("/work/shared/SECURITY.md")):
        if candidate.is_file():
            return candidate
    return None


def marked_ids(tree: ast.AST) -> set[str]:
    """Ids in every `pytest.mark.security(...)` call of a module."""
    ids: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "security"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "mark"
        ):
            ids |= {
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            }
    return ids


def has_tests(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in ast.walk(tree)
    )


def ids_in_tests() -> dict[str, set[str]]:
    """id -> the test modules that prove it."""
    found: dict[str, set[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        ids = marked_ids(tree)
        docstring = ast.get_docstring(tree) or ""
        first_line = docstring.split("\n", 1)[0]
        if has_tests(tree) and ":" in first_line:
            # "REL-1: a database that stops ..." names what the whole module proves.
            ids |= set(ID_PATTERN.findall(first_line.split(":", 1)[0]))
        for id_ in ids:
            found.setdefault(id_, set()).add(str(path.relative_to(ROOT)))
    return found


class TestEverySecurityPropertyHasATest:
    def test_the_id_list_matches_security_md(self) -> None:
        document = security_document()
        if document is None:
            # Outside the project workspace: the copy above is the list.
            assert len(set(SECURITY_IDS)) == len(SECURITY_IDS)
            return
        text = document.read_text()
        rows = re.findall(r"^\| ([A-Z]+-\d+) \|", text, flags=re.MULTILINE)
        being_built = re.findall(r"^- \*\*([A-Z]+-\d+)\*\*", text, flags=re.MULTILINE)
        # The document's table first, in its order; then the properties built since the document
        # was last written, which it still lists apart, under the features being built.
        assert SECURITY_IDS[: len(rows)] == tuple(rows)
        assert set(SECURITY_IDS[len(rows) :]) <= set(being_built)
        assert len(set(SECURITY_IDS)) == len(SECURITY_IDS)

    def test_every_id_has_a_test(self) -> None:
        found = ids_in_tests()
        assert [id_ for id_ in SECURITY_IDS if id_ not in found] == []

    def test_no_test_names_an_unknown_id(self) -> None:
        assert set(ids_in_tests()) - set(SECURITY_IDS) == set()

    def test_the_marker_is_registered(self, pytestconfig: pytest.Config) -> None:
        markers = pytestconfig.getini("markers")
        assert any(line.startswith("security(") for line in markers)


def answer(
    path: str, body: str, *, token: str | None = None, sent: str = ""
) -> tuple[httpx.Response, str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = httpx.Request("POST", f"http://testserver{path}", headers=headers, content=sent)
    return httpx.Response(200, content=body.encode(), request=request), token


@pytest.mark.security("AC-2")
class TestLeakScanner:
    """The scanner installed on every client of the suite fails on each kind of leak."""

    USER = Caller(uuid.uuid4(), "AUTHENTICATED")
    OTHER = uuid.uuid4()

    def scanner(self) -> LeakScanner:
        async def resolve(token: str) -> Caller | None:
            return self.USER if token == "caller-token" else None

        async def emails() -> list[tuple[uuid.UUID, str]]:
            return [(self.USER.user_id, "me@example.com"), (self.OTHER, "other@example.com")]  # type: ignore[list-item]

        async def codes() -> list[tuple[uuid.UUID, str]]:
            return [(self.USER.user_id, "MYC0DE1234"), (self.OTHER, "0THERC0DE9")]  # type: ignore[list-item]

        return LeakScanner(resolve, emails, codes)

    async def run(self, scanner: LeakScanner, response: httpx.Response) -> None:
        await scanner.on_request(response.request)
        await scanner.on_response(response)

    @pytest.mark.parametrize(
        "body",
        [
            '{"hashed_password": "x"}',
            '{"h": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}',
            '{"h": "$2b$12$abcdefghijklmnopqrstuv"}',
            '{"failed_login_count": 3}',
            '{"locked_until": null}',
            '{"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4eXp6eXp6In0.c2lnbmF0dXJlc2lnbmF0dXJl"}',
            '{"email": "other@example.com"}',
            '{"seen": "caller-token"}',
            '{"checkin_code": "0THERC0DE9"}',
        ],
    )
    async def test_a_leak_to_a_user_fails(self, body: str) -> None:
        response, _ = answer("/api/v1/users/me", body, token="caller-token")
        with pytest.raises(AssertionError, match="AC-2"):
            await self.run(self.scanner(), response)

    async def test_a_token_seen_earlier_fails_in_any_later_answer(self) -> None:
        scanner = self.scanner()
        first, _ = answer("/api/v1/users/me", "{}", token="other-token")
        await self.run(scanner, first)
        leaked, _ = answer("/api/v1/events", '{"t": "other-token"}', token="caller-token")
        with pytest.raises(AssertionError, match="token"):
            await self.run(scanner, leaked)

    async def test_a_token_hash_fails(self) -> None:
        scanner = self.scanner()
        stored = hashlib.sha256(b"caller-token").hexdigest()
        response, _ = answer("/api/v1/users/me", f'{{"h": "{stored}"}}', token="caller-token")
        with pytest.raises(AssertionError, match="token hash"):
            await self.run(scanner, response)

    async def test_an_api_token_is_shown_in_its_201_only(self) -> None:
        scanner = self.scanner()
        token = "em_pat_" + "a" * 43
        request = httpx.Request(
            "POST",
            "http://testserver/api/v1/users/me/api-tokens",
            headers={"Authorization": "Bearer caller-token"},
        )
        created = httpx.Response(201, content=f'{{"token": "{token}"}}'.encode(), request=request)
        await self.run(scanner, created)
        assert scanner.scanned == 1
        listed, _ = answer(
            "/api/v1/users/me/api-tokens", f'{{"t": "{token}"}}', token="caller-token"
        )
        with pytest.raises(AssertionError, match="token"):
            await self.run(scanner, listed)

    async def test_a_feed_token_is_shown_in_the_feed_answers_only(self) -> None:
        scanner = self.scanner()
        token = "f" * 32
        body = f'{{"url": "http://testserver/api/v1/calendar/{token}.ics", "created_at": "x"}}'
        for path in ("/api/v1/users/me/calendar-feed", "/api/v1/users/me/calendar-feed/rotate"):
            shown, _ = answer(path, body, token="caller-token")
            await self.run(scanner, shown)
        assert scanner.scanned == 2
        leaked, _ = answer("/api/v1/users/me/export", f'{{"t": "{token}"}}', token="caller-token")
        with pytest.raises(AssertionError, match="feed token"):
            await self.run(scanner, leaked)

    @pytest.mark.parametrize(
        ("path", "body", "sent"),
        [
            # The caller's own email.
            ("/api/v1/users/me", '{"email": "me@example.com"}', ""),
            # What the caller sent, echoed in a 422.
            ("/api/v1/users", '{"input": "other@example.com"}', '{"email": "other@example.com"}'),
            # A login issues the caller's new token.
            ("/api/v1/auth/login", '{"access_token": "new-token", "token_type": "bearer"}', ""),
            # A word that contains an email as a part is not that email.
            ("/api/v1/events", '{"x": "another@example.com.au"}', ""),
            # The caller's own check-in code.
            ("/api/v1/users/me/registrations", '{"checkin_code": "MYC0DE1234"}', ""),
        ],
    )
    async def test_legitimate_answers_pass(self, path: str, body: str, sent: str) -> None:
        scanner = self.scanner()
        response, _ = answer(path, body, token="caller-token", sent=sent)
        await self.run(scanner, response)
        assert scanner.scanned == 1

    async def test_staff_see_emails_and_lockout_fields(self) -> None:
        staff = Caller(uuid.uuid4(), "MANAGER")

        async def resolve(_token: str) -> Caller | None:
            return staff

        scanner = LeakScanner(resolve, self.scanner()._emails, self.scanner()._codes)
        body = '{"email": "other@example.com", "locked_until": null}'
        response, _ = answer("/api/v1/users", body, token="staff-token")
        await self.run(scanner, response)
        # Not another user's check-in code either (PRIV-1).
        response, _ = answer("/api/v1/users", '{"c": "0THERC0DE9"}', token="staff-token")
        with pytest.raises(AssertionError, match="check-in codes"):
            await self.run(scanner, response)
        # Not password hashes, though.
        response, _ = answer("/api/v1/users", '{"hashed_password": "x"}', token="staff-token")
        with pytest.raises(AssertionError, match="password hash"):
            await self.run(scanner, response)

    @pytest.mark.security("DIR-1")
    async def test_emails_are_shared_by_an_accepted_connection_only(self) -> None:
        """The other party of an ACCEPTED connection may be shown the caller's contact's email;
        a PENDING request, a directory or another event's attendee share none."""
        connected: set[uuid.UUID] = set()

        async def contacts(user_id: uuid.UUID) -> list[uuid.UUID]:
            assert user_id == self.USER.user_id
            return list(connected)

        base = self.scanner()
        scanner = LeakScanner(base._resolve, base._emails, base._codes, contacts)
        user = json.dumps({"id": str(self.OTHER), "email": "other@example.com"})
        pending = f'{{"status": "PENDING", "user": {user}}}'
        for path, body in [
            ("/api/v1/users/me/connections", pending),
            ("/api/v1/events/x/directory", '{"items": [{"user": {"email": "other@example.com"}}]}'),
            ("/api/v1/users/me/connections.vcf", "EMAIL;TYPE=INTERNET:other@example.com\r\n"),
        ]:
            response, _ = answer(path, body, token="caller-token")
            with pytest.raises(AssertionError, match="other users' emails"):
                await self.run(scanner, response)

        connected.add(self.OTHER)
        accepted = pending.replace("PENDING", "ACCEPTED")
        response, _ = answer("/api/v1/users/me/connections", accepted, token="caller-token")
        await self.run(scanner, response)
        assert scanner.scanned == 4

    async def test_the_suite_client_scans(self, client: httpx.AsyncClient) -> None:
        hooks = client.event_hooks
        assert any(isinstance(getattr(h, "__self__", None), LeakScanner) for h in hooks["response"])
