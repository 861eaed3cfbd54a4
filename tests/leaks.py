"""AC-2 across the suite: every response body is scanned for what must not reach its caller.

`LeakScanner` is installed as httpx event hooks on the suite's `client` fixture (which reads
callers and users in the test's transaction) and on the clients of the real-server tests
(`LeakScanner().hooks`: no lookups, so every caller counts as anonymous and emails are not
checked). It fails the request (an AssertionError raised from the client call, so the test
fails) when a response body holds:

- a password hash (`$argon2...`, bcrypt's `$2b$`...) or a `hashed_password` key, to anyone;
- a bearer token seen in this test (in any request's Authorization header, issued by a login
  answer or by the 201 that creates an API token) or its SHA-256 (what is stored of login and
  API tokens), or a signed JWT (verification and reset tokens), to anyone, except the token a
  login answer or that 201 issues to its caller;
- a calendar feed token seen in this test (learnt from the answers of GET
  /users/me/calendar-feed and its rotate, which show the owner's feed URL), anywhere but in
  such an answer to its owner (PRIV-1);
- a webhook signing secret (`whsec_...`), to anyone, except in the answers that create or rotate
  it (POST /webhooks 201, rotate-secret 200);
- a lockout field (`failed_login_count`, `locked_until`), to a caller who is not staff;
- the email of another user (when the scanner can look users up), to a caller who is not staff,
  unless the two are connected (an ACCEPTED connection shares their emails, DIR-1: a PENDING
  request or a directory shares none);
- the check-in code of another user's registration (when the scanner can look them up), to
  anyone, staff included (PRIV-1: a code is shown to its registrant alone).

What the request itself carried (its URL or body) is never counted: echoing the caller's own
input (a 422, a page for the link the caller followed) discloses nothing. The caller is read from
the request's bearer token before the request runs (it may be revoked by the request).
"""

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import httpx

STAFF_ROLES = frozenset({"MANAGER", "ADMIN"})
LOGIN_PATH = "/api/v1/auth/login"
API_TOKENS_PATH = "/api/v1/users/me/api-tokens"
# The two answers that show the caller's calendar feed URL, and the feed token in it.
FEED_URL_PATHS = frozenset(
    {"/api/v1/users/me/calendar-feed", "/api/v1/users/me/calendar-feed/rotate"}
)
FEED_TOKEN = re.compile(r"/api/v1/calendar/([A-Za-z0-9_-]{32})\.ics")
# Static documents about the API (their examples show what a token looks like).
DOCUMENTS = frozenset({"/openapi.json", "/docs", "/redoc"})

PASSWORD_HASH = re.compile(r"\$argon2(?:id|i|d)\$|\$2[aby]\$\d\d\$|\"hashed_password\"")
LOCKOUT_FIELD = re.compile(r"\"(?:failed_login_count|locked_until)\"")
WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{20,}={0,2}")
WEBHOOKS_PATH = "/api/v1/webhooks"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")


@dataclass(frozen=True)
class Caller:
    """Who sent a request: no token (anonymous), or the token's user."""

    user_id: uuid.UUID | None = None
    role: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


ANONYMOUS = Caller()
# token -> its caller (None when the token is unknown: revoked, crafted, expired).
ResolveCaller = Callable[[str], Awaitable[Caller | None]]
# The (id, email) of every user that exists now.
ListEmails = Callable[[], Awaitable[Iterable[tuple[uuid.UUID, str]]]]
# The (registrant id, code) of every registration holding a check-in code now.
ListCodes = Callable[[], Awaitable[Iterable[tuple[uuid.UUID, str]]]]
# user id -> the ids of the users it is connected with now (ACCEPTED connections, either way).
ListContacts = Callable[[uuid.UUID], Awaitable[Iterable[uuid.UUID]]]


def _bearer(request: httpx.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _email_pattern(email: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.+-]){re.escape(email)}(?![\w.-])", re.IGNORECASE)


def _sent(request: httpx.Request) -> str:
    """What the caller sent: its URL and body (a streamed body is not kept)."""
    try:
        body = request.content.decode("utf-8", errors="replace")
    except httpx.RequestNotRead:
        body = ""
    return f"{unquote_plus(str(request.url))}\n{body}"


def _token_subjects(text: str) -> set[uuid.UUID]:
    """The `sub` of every signed token in `text` (read, not verified: the server verified it)."""
    subjects = set()
    for match in JWT.finditer(text):
        payload = match.group(0).split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            subjects.add(uuid.UUID(str(claims["sub"])))
        except (ValueError, KeyError, TypeError):
            continue
    return subjects


class LeakScanner:
    def __init__(
        self,
        resolve: ResolveCaller | None = None,
        emails: ListEmails | None = None,
        codes: ListCodes | None = None,
        contacts: ListContacts | None = None,
    ) -> None:
        self._resolve = resolve
        self._emails = emails
        self._codes = codes
        self._contacts = contacts
        self.tokens: set[str] = set()
        self.feed_tokens: set[str] = set()
        self._callers: dict[int, Caller] = {}
        self.scanned = 0

    @property
    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.on_request], "response": [self.on_response]}

    async def on_request(self, request: httpx.Request) -> None:
        token = _bearer(request)
        caller = ANONYMOUS
        if token is not None:
            self.tokens.add(token)
            resolved = await self._resolve(token) if self._resolve else None
            # A token that is not (or no longer) valid authenticates nobody.
            caller = resolved or ANONYMOUS
        self._callers[id(request)] = caller

    async def on_response(self, response: httpx.Response) -> None:
        request = response.request
        caller = self._callers.pop(id(request), ANONYMOUS)
        await response.aread()
        issued = self._issued_token(response)
        feed = self._shown_feed_token(response)
        self.check(response, caller, issued, feed)
        await self.check_emails(response, caller)
        await self.check_codes(response, caller)
        if issued:
            self.tokens.add(issued)
        if feed:
            self.feed_tokens.add(feed)

    @staticmethod
    def shows_webhook_secret(response: httpx.Response) -> bool:
        """The two answers that show a webhook's secret: its 201 and the rotation's 200."""
        path = response.request.url.path
        if response.request.method != "POST" or not path.startswith(WEBHOOKS_PATH):
            return False
        if path == WEBHOOKS_PATH:
            return response.status_code == 201
        return path.endswith("/rotate-secret") and response.status_code == 200

    @staticmethod
    def _issued_token(response: httpx.Response) -> str | None:
        request = response.request
        if request.url.path == LOGIN_PATH and response.status_code == 200:
            key = "access_token"
        elif request.url.path == API_TOKENS_PATH and response.status_code == 201:
            key = "token"
        else:
            return None
        try:
            token = response.json().get(key)
        except ValueError:
            return None
        return token if isinstance(token, str) else None

    @staticmethod
    def _shown_feed_token(response: httpx.Response) -> str | None:
        """The feed token in an answer that shows the caller's own feed URL."""
        if response.request.url.path not in FEED_URL_PATHS or response.status_code != 200:
            return None
        try:
            url = response.json().get("url")
        except ValueError:
            return None
        match = FEED_TOKEN.search(url) if isinstance(url, str) else None
        return match.group(1) if match else None

    def check(
        self,
        response: httpx.Response,
        caller: Caller,
        issued: str | None,
        feed: str | None = None,
    ) -> None:
        """Raise AssertionError naming every leak in the response body."""
        text = response.content.decode("utf-8", errors="replace")
        if not text or response.request.url.path in DOCUMENTS:
            return
        self.scanned += 1
        request = response.request
        sent = _sent(request)
        leaks: list[str] = []

        def found(what: str, matches: Iterable[str]) -> None:
            leaks.extend(f"{what}: {m[:40]}" for m in matches if m.strip('"') not in sent)

        found("password hash", (m.group(0) for m in PASSWORD_HASH.finditer(text)))
        found("token", (t for t in self.tokens if t in text and t != issued))
        found("feed token", (t for t in self.feed_tokens if t in text and t != feed))
        hashes = (hashlib.sha256(t.encode()).hexdigest() for t in self.tokens)
        found("token hash", (h for h in hashes if h in text))
        found("signed token", (m.group(0) for m in JWT.finditer(text)))
        if not self.shows_webhook_secret(response):
            found("webhook secret", (m.group(0) for m in WEBHOOK_SECRET.finditer(text)))
        if not caller.is_staff:
            found("lockout field", (m.group(0) for m in LOCKOUT_FIELD.finditer(text)))
        if leaks:
            raise AssertionError(
                f"AC-2: {request.method} {request.url.path} as {caller.role or 'anonymous'}"
                f" leaks {leaks}"
            )

    async def check_codes(self, response: httpx.Response, caller: Caller) -> None:
        if self._codes is None or response.request.url.path in DOCUMENTS:
            return
        # Looked up for every body alike: a route's statement count (tests/test_query_counts.py)
        # must not depend on what its answer happens to hold.
        text = response.content.decode("utf-8", errors="replace")
        if not text:
            return
        request = response.request
        sent = _sent(request)
        leaks = [
            code
            for holder, code in await self._codes()
            if holder != caller.user_id and code in text and code not in sent
        ]
        if leaks:
            raise AssertionError(
                f"AC-2: {request.method} {request.url.path} as {caller.role or 'anonymous'}"
                f" leaks other users' check-in codes {leaks}"
            )

    async def check_emails(self, response: httpx.Response, caller: Caller) -> None:
        if (
            self._emails is None
            or caller.is_staff
            or b"@" not in response.content
            or response.request.url.path in DOCUMENTS
        ):
            return
        text = response.content.decode("utf-8", errors="replace")
        request = response.request
        sent = _sent(request)
        # A verification or reset token proves who holds it: its subject is the caller too.
        own = {caller.user_id, *_token_subjects(sent)}
        if self._contacts is not None and caller.user_id is not None:
            # Connected users see each other's emails, from the moment the request is accepted.
            own |= set(await self._contacts(caller.user_id))
        leaks = [
            email
            for user_id, email in await self._emails()
            if user_id not in own
            and "@" in email
            and _email_pattern(email).search(text)
            and not _email_pattern(email).search(sent)
        ]
        if leaks:
            raise AssertionError(
                f"AC-2: {request.method} {request.url.path} as {caller.role or 'anonymous'}"
                f" leaks other users' emails {leaks}"
            )
