"""A real Chromium (Debian's, driven by Playwright) against a real server.

The server runs as its own process on a throwaway database, with its in-process worker sending
mail to an SMTP capture of its own; PUBLIC_BASE_URL is its own address, so the links of its
mails open it. Chromium is installed from Debian when missing (Playwright's own download cannot
run here), and starts without the background services that would try to reach the internet.
Screenshots go to a temporary folder, never into the repository.
"""

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, ViewportSize, async_playwright

from api.mail.service import SUBJECTS
from tests.factories import DEFAULT_PASSWORD
from tests.leaks import LeakScanner
from tests.support import (
    Mailbox,
    TestDatabaseServer,
    debian_program,
    free_port,
    run_server,
    smtp_server,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
MAIL_WAIT_SECONDS = 15
PHONE: ViewportSize = {"width": 375, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Site:
    """The server under test, and the mail it sent."""

    base_url: str
    mailbox: Mailbox
    database_url: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=30, event_hooks=LeakScanner().hooks
        )

    async def mail(self, template: str, to: str) -> EmailMessage:
        """The last mail of `template` (its subject) sent to `to`, waiting for it to arrive."""
        subject = SUBJECTS[template]
        deadline = time.monotonic() + MAIL_WAIT_SECONDS
        while True:
            found = [m for m in self.mailbox.to(to) if m["Subject"] == subject]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"no {template!r} mail to {to}"
            await asyncio.sleep(0.05)


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def mailed_token(message: EmailMessage, page: str) -> str:
    """The token of the `/<page>?token=...` link in a mail's text part."""
    [token] = re.findall(rf"/{page}\?token=([A-Za-z0-9._-]+)", Mailbox.text(message))
    return str(token)


def new_email(purpose: str) -> str:
    # Long, as real addresses can be: a narrow page must wrap it rather than scroll sideways.
    return f"{purpose}-{uuid.uuid4().hex[:12]}.firstname.lastname@department.example.com"


async def register(site: Site, email: str, password: str = DEFAULT_PASSWORD) -> None:
    """A new account (its verification mail goes out)."""
    async with site.client() as client:
        response = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
    assert response.status_code == 201, response.text


async def verified_account(site: Site, purpose: str) -> str:
    """A new account verified with the token of its mail, by the JSON API; its email."""
    email = new_email(purpose)
    await register(site, email)
    token = mailed_token(await site.mail("verify_email", email), "verify-email")
    async with site.client() as client:
        response = await client.post("/api/v1/auth/verify", json={"token": token})
    assert response.status_code == 200, response.text
    return email


async def login_status(site: Site, email: str, password: str) -> int:
    async with site.client() as client:
        response = await client.post(
            "/api/v1/auth/login", data={"username": email, "password": password}
        )
    return response.status_code


class Traffic:
    """Every request a page makes, and those the browser refused by the page's
    Content-Security-Policy before sending them."""

    def __init__(self, page: Page) -> None:
        self.requests: list[str] = []
        self.refused: list[str] = []
        page.on("request", self._on_request)
        page.on("requestfailed", self._on_failed)

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_failed(self, request: Request) -> None:
        if request.failure == "csp":
            self.refused.append(request.url)

    def sent_elsewhere(self) -> list[str]:
        """Requests that left for anywhere but the server's host."""
        return [
            url for url in self.requests if url not in self.refused and host_of(url) != LOCAL_HOST
        ]


def host_of(url: str) -> str | None:
    # A blob: URL is made by the page itself and named after its origin.
    return urlsplit(url.removeprefix("blob:")).hostname


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = debian_program("chromium")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def site(db_server: TestDatabaseServer) -> Iterator[Site]:
    """One server for the browser tests, started at the first (their modules may run apart)."""
    port, smtp_port = free_port(), free_port()
    mailbox = Mailbox()
    env = {
        "PUBLIC_BASE_URL": f"http://{LOCAL_HOST}:{port}",
        "SMTP_PORT": str(smtp_port),
        "RUN_WORKER_IN_PROCESS": "true",
        "AUTH_RATE_LIMIT": "off",
    }
    with (
        smtp_server(mailbox, smtp_port),
        run_server(env, workers=1, own_database=db_server, port=port) as server,
    ):
        yield Site(server.base_url, mailbox, server.database_url)
