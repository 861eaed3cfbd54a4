"""The verify-email and reset-password pages in Chromium, from the link of a real mail to the
end of their flow: on a 375 px phone with JavaScript off, and on a desktop with it on. Each page
fits the narrow screen, labels its fields, shows where the keyboard focus is, and works from the
keyboard alone. A used or bad link shows the 400 page, and no other origin can frame a page."""

import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    ViewportSize,
    expect,
)

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    Site,
    html_part,
    login_status,
    mailed_token,
    new_email,
    register,
    verified_account,
)
from tests.factories import DEFAULT_PASSWORD
from tests.support import free_port

NEW_PASSWORD = "a brand new and rather long passphrase"
BAD_LINK = "This link does not work"


@dataclass(frozen=True)
class Profile:
    name: str
    viewport: ViewportSize
    javascript: bool


PROFILES = [Profile("phone-no-js", PHONE, False), Profile("desktop", DESKTOP, True)]


@pytest.fixture(params=PROFILES, ids=[profile.name for profile in PROFILES])
async def tab(request: pytest.FixtureRequest, browser: Browser) -> AsyncIterator["Tab"]:
    profile: Profile = request.param
    context = await browser.new_context(
        viewport=profile.viewport, java_script_enabled=profile.javascript
    )
    yield Tab(profile, context, await context.new_page())
    await context.close()


@dataclass
class Tab:
    profile: Profile
    context: BrowserContext
    page: Page

    async def follow(self, mail_html: str, link_text: str) -> Response:
        """Show a mail's HTML part and click its link `link_text`; the page's response."""
        await self.page.set_content(mail_html)
        async with self.page.expect_navigation() as navigation:
            await self.page.get_by_role("link", name=link_text).click()
        return await navigation.value

    async def submit_with_enter(self) -> Response:
        """Press Enter on the focused control (the form's button): the next page's response."""
        async with self.page.expect_navigation() as navigation:
            await self.page.keyboard.press("Enter")
        return await navigation.value

    async def check(self, heading: str, screenshots: Path, name: str) -> None:
        """The page is `heading`, fits the screen, labels every field and shows the focus of
        each control as the keyboard reaches it (ending on the last one)."""
        page = self.page
        await expect(page.locator("h1")).to_have_text(heading)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.profile.viewport["width"]
        fields = page.locator("input:not([type=hidden]), select, textarea")
        for field in await fields.all():
            assert await field.evaluate("element => element.labels.length") == 1
            await expect(field).to_have_accessible_name(ANYTHING)
        controls = page.locator("input:not([type=hidden]), select, textarea, button, a[href]")
        for control in await controls.all():
            await expect(control).to_have_accessible_name(ANYTHING)
            await page.keyboard.press("Tab")
            await expect(control).to_be_focused()
            assert await control.evaluate(FOCUS_IS_SHOWN), await control.evaluate("e => e.id")
        await page.screenshot(path=screenshots / f"{name}-{self.profile.name}.png")


# A visible focus: an outline that is drawn, or a box shadow.
FOCUS_IS_SHOWN = """element => {
    const style = getComputedStyle(element);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    return outline || style.boxShadow !== "none";
}"""
ANYTHING = re.compile(r"\S")


async def test_verify_email_from_the_mail_link(tab: Tab, site: Site, screenshots: Path) -> None:
    email = new_email("verify")
    await register(site, email)
    mail = html_part(await site.mail("verify_email", email))

    response = await tab.follow(mail, "Verify my email")

    assert response.status == 200
    await expect(tab.page.locator("main")).to_contain_text(email)
    await tab.check("Verify your email", screenshots, "verify-form")
    done = await tab.submit_with_enter()
    assert done.status == 200
    await expect(tab.page.locator("main")).to_contain_text("Your email is verified.")
    await tab.check("Email verified", screenshots, "verify-done")
    assert await login_status(site, email, DEFAULT_PASSWORD) == 200

    used = await tab.follow(mail, "Verify my email")

    assert used.status == 400
    await expect(tab.page.locator("main")).to_contain_text(
        "The verification link is invalid, expired or already used."
    )
    await tab.check(BAD_LINK, screenshots, "verify-used")


async def test_reset_password_from_the_mail_link(tab: Tab, site: Site, screenshots: Path) -> None:
    email = await verified_account(site, "reset")
    async with site.client() as client:
        asked = await client.post("/api/v1/auth/forgot-password", json={"email": email})
    assert asked.status_code == 202
    mail = html_part(await site.mail("reset_password", email))

    response = await tab.follow(mail, "Choose a new password")

    assert response.status == 200
    await tab.check("Choose a new password", screenshots, "reset-form")
    # The keyboard alone: the field (reached by check()'s Tab presses in order) takes the
    # password, the next Tab reaches the button, Enter sends the form. First a password the
    # policy refuses (the email itself): the form again, saying why, tied to the field.
    field = tab.page.get_by_label("New password (8 to 128 characters)")
    await field.focus()
    await tab.page.keyboard.type(email)
    await tab.page.keyboard.press("Tab")
    refused = await tab.submit_with_enter()
    assert refused.status == 400
    await expect(field).to_have_accessible_description("Password should not be the email")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await tab.check("Choose a new password", screenshots, "reset-refused")

    await field.focus()
    await tab.page.keyboard.type(NEW_PASSWORD)
    await tab.page.keyboard.press("Tab")
    done = await tab.submit_with_enter()

    assert done.status == 200
    await expect(tab.page.locator("main")).to_contain_text("Your password is changed")
    await tab.check("Password changed", screenshots, "reset-done")
    assert await login_status(site, email, NEW_PASSWORD) == 200
    assert await login_status(site, email, DEFAULT_PASSWORD) == 400

    used = await tab.follow(mail, "Choose a new password")

    assert used.status == 400
    await expect(tab.page.locator("main")).to_contain_text(
        "The password reset link is invalid, expired or already used."
    )
    await tab.check(BAD_LINK, screenshots, "reset-used")


@pytest.mark.parametrize("path", ["/verify-email", "/reset-password"])
async def test_a_bad_token_shows_the_400_page(
    tab: Tab, site: Site, screenshots: Path, path: str
) -> None:
    response = await tab.page.goto(f"{site.base_url}{path}?token=not.a.token")

    assert response is not None
    assert response.status == 400
    await tab.check(BAD_LINK, screenshots, f"bad-token{path.replace('/', '-')}")


@pytest.fixture
def other_origin() -> Iterator[tuple[str, dict[str, str]]]:
    """A second local HTTP server, on a port of its own (so another origin), serving the
    pages put in the dict it yields by path."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_another_origin_cannot_frame_the_reset_page(
    browser: Browser,
    site: Site,
    screenshots: Path,
    other_origin: tuple[str, dict[str, str]],
) -> None:
    email = new_email("framed")
    await register(site, email)
    async with site.client() as client:
        asked = await client.post("/api/v1/auth/forgot-password", json={"email": email})
    assert asked.status_code == 202
    token = mailed_token(await site.mail("reset_password", email), "reset-password")
    link = f"{site.base_url}/reset-password?token={token}"
    origin, pages = other_origin
    # The reset form with a working token, and for comparison a document that may be framed.
    pages["/"] = (
        "<!doctype html><title>Another site</title>"
        f'<iframe name="reset" title="reset" src="{link}"></iframe>'
        f'<iframe name="health" title="health" src="{site.base_url}/health"></iframe>'
    )
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text))
    answers: dict[str, Response] = {}

    def keep(response: Response) -> None:
        answers.setdefault(response.url, response)

    page.on("response", keep)

    await page.goto(f"{origin}/")
    await expect(page.frame_locator('iframe[name="health"]').locator("body")).to_contain_text(
        '{"status":"ok"}'
    )

    # The server answered the form (200, with its policy); the browser refused to show it.
    answer = answers[link]
    assert answer.status == 200
    assert "frame-ancestors 'none'" in (await answer.all_headers())["content-security-policy"]
    assert any("frame-ancestors 'none'" in text for text in refusals), refusals
    framed = page.frame(name="reset")
    assert framed is not None
    assert framed.url != link
    # In its place, the browser's own error document: no form, no field, none of the page.
    assert framed.url != link
    assert await framed.locator("form, input").count() == 0
    assert "Choose a new password" not in await framed.content()
    await page.screenshot(path=screenshots / "framed-reset.png")
    await context.close()
