"""/docs (Swagger UI) and /redoc in Chromium: both render every tag of the OpenAPI document
from what the service itself serves, and Swagger UI's "Authorize" logs in and stays logged in
across a reload. The tags are read from /openapi.json, whatever it holds at the time."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, Site, Traffic, verified_account
from tests.factories import DEFAULT_PASSWORD

ME = "/api/v1/users/me"
RENDER_TIMEOUT_MS = 30_000


async def document_tags(site: Site) -> set[str]:
    """The tags of every operation of the document, paths and webhooks ("default": none)."""
    async with site.client() as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    operations = [
        operation
        for section in (document["paths"], document.get("webhooks", {}))
        for item in section.values()
        for operation in item.values()
        if isinstance(operation, dict) and "responses" in operation
    ]
    return {tag for operation in operations for tag in operation.get("tags") or ["default"]}


async def swagger_ui_tags(page: Page) -> set[str]:
    tags = page.locator("#swagger-ui .opblock-tag[data-tag]")
    await expect(tags.first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    return {str(await tag.get_attribute("data-tag")) for tag in await tags.all()}


async def redoc_tags(page: Page) -> set[str]:
    sections = page.locator('[data-section-id^="tag/"]')
    await expect(sections.first).to_be_attached(timeout=RENDER_TIMEOUT_MS)
    ids = [str(await s.get_attribute("data-section-id")) for s in await sections.all()]
    # Sections of a tag's operations are named tag/<tag>/operation/<id>.
    return {section.split("/")[1] for section in ids}


@pytest.mark.parametrize(
    ("path", "shown_tags"), [("/docs", swagger_ui_tags), ("/redoc", redoc_tags)]
)
async def test_every_tag_rendered_from_the_service_alone(
    browser: Browser, site: Site, screenshots: Path, path: str, shown_tags: Any
) -> None:
    expected = await document_tags(site)
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    traffic = Traffic(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    response = await page.goto(f"{site.base_url}{path}")

    assert response is not None
    assert response.status == 200
    assert await shown_tags(page) == expected
    await page.screenshot(path=screenshots / f"{path.strip('/')}.png")
    assert errors == []
    assert traffic.sent_elsewhere() == []
    # What it asked of the service: the page, its assets under /docs/static, the document.
    assert f"{site.base_url}/openapi.json" in traffic.requests
    assert any(url.startswith(f"{site.base_url}/docs/static/") for url in traffic.requests)
    await context.close()


async def execute_get_me(page: Page, site: Site) -> tuple[int, str, str | None]:
    """Try it out + Execute on GET /users/me: the status and body Swagger UI shows, once it
    shows the answer to this call, and the Authorization header the call carried."""
    operation = page.locator(".opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{ME}"]')
    )
    execute = operation.locator(".execute")
    if not await operation.locator(".opblock-body").is_visible():
        await operation.locator(".opblock-summary").click()
    try_out = operation.locator(".try-out__btn", has_text="Try it out")
    if await try_out.is_visible():
        await try_out.click()
    async with page.expect_response(f"{site.base_url}{ME}") as answer:
        await execute.click()
    response = await answer.value
    live = operation.locator(".live-responses-table .response")
    await expect(live.locator(".response-col_status")).to_have_text(str(response.status))
    body = await live.locator(".response-col_description pre").first.inner_text()
    return response.status, body, await response.request.header_value("authorization")


async def test_authorize_then_try_it_out_and_the_token_survives_a_reload(
    browser: Browser, site: Site, screenshots: Path
) -> None:
    email = await verified_account(site, "docs")
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    traffic = Traffic(page)
    await page.goto(f"{site.base_url}/docs")
    await expect(page.locator(".auth-wrapper .authorize")).to_be_visible(timeout=RENDER_TIMEOUT_MS)

    # Without a token first: the answer Swagger UI shows is the 401.
    assert await execute_get_me(page, site) == (401, '{\n  "detail": "UNAUTHORIZED"\n}', None)

    await page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    await dialog.locator("#oauth_username").fill(email)
    await dialog.locator("#oauth_password").fill(DEFAULT_PASSWORD)
    await dialog.locator(".auth-btn-wrapper .authorize").click()
    await expect(dialog.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible()
    await expect(dialog).to_contain_text("Authorized")
    await page.screenshot(path=screenshots / "docs-authorized.png")
    await dialog.locator(".auth-btn-wrapper .btn-done").click()

    status, body, authorization = await execute_get_me(page, site)
    assert (status, json.loads(body)["email"]) == (200, email)
    assert authorization is not None
    assert authorization.startswith("Bearer ")
    await page.screenshot(path=screenshots / "docs-users-me.png")

    await page.reload()
    await expect(page.locator(".auth-wrapper .authorize")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    # Still authorized: the lock is shut, the dialog offers Logout, and the call carries it.
    await expect(page.locator(".auth-wrapper .authorize")).to_have_class(re.compile("locked"))
    await page.locator(".auth-wrapper .authorize").click()
    await expect(dialog.locator(".auth-btn-wrapper button", has_text="Logout")).to_be_visible()
    await expect(dialog).to_contain_text(email)
    await dialog.locator(".auth-btn-wrapper .btn-done").click()
    assert await execute_get_me(page, site) == (status, body, authorization)
    assert traffic.sent_elsewhere() == []
    await context.close()
