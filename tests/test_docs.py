"""/docs and /redoc as served: pages that name no address outside the service, assets that are
fastapi-offline's own files, and a policy that lets the browser load nothing from elsewhere.
(tests/browser/test_docs.py renders both in Chromium.)"""

import base64
import hashlib
import re

import httpx
import pytest

from api.docs import ASSETS, ASSETS_PATH, OAUTH2_REDIRECT_PATH

PAGES = ["/docs", "/redoc"]
REFERENCES = re.compile(r'(?:src|href)="([^"]*)"')
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.mark.parametrize("path", PAGES)
async def test_page_names_no_address_outside_the_service(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "://" not in response.text
    references = REFERENCES.findall(response.text)
    assert references
    assert all(reference.startswith(f"{ASSETS_PATH}/") for reference in references)


@pytest.mark.parametrize("path", PAGES)
async def test_assets_are_fastapi_offlines_own_files(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)

    for reference in REFERENCES.findall(page.text):
        asset = await client.get(reference)
        assert asset.status_code == 200
        assert asset.content == (ASSETS / reference.removeprefix(f"{ASSETS_PATH}/")).read_bytes()


@pytest.mark.parametrize("path", [*PAGES, OAUTH2_REDIRECT_PATH])
async def test_policy_confines_the_page_to_the_service(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    # Scripts: this origin's files, and each inline script of the page by its hash alone.
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(response.text)
    ]
    assert policy["script-src"] == " ".join(["'self'", *hashes])
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_swagger_ui_keeps_the_authorization_and_shows_no_validator(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text

    assert '"persistAuthorization": true,' in page
    assert '"validatorUrl": null,' in page
    assert f"oauth2RedirectUrl: window.location.origin + '{OAUTH2_REDIRECT_PATH}'" in page
    assert "url: '/openapi.json'" in page


async def test_redoc_reads_the_document_where_it_was(client: httpx.AsyncClient) -> None:
    page = (await client.get("/redoc")).text

    assert '<redoc spec-url="/openapi.json"></redoc>' in page
    assert (await client.get("/openapi.json")).status_code == 200
