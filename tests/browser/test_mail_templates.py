"""Every mail template's HTML part in Chromium, as a reader's mail program shows it.

The templates are listed from api/mail/templates, so a new one fails here until it has an
example. The mails about an event are rendered with what their senders pass (the event as
`event_summary` describes it), for a real published event in America/New_York on the server's
database: each must show the event's title and its local wall-clock time, never UTC. The
verification and reset mails are the real ones the server sent. Every link must start with
PUBLIC_BASE_URL (the server's address) and point to the right path; the links to the service's
pages and to the event are followed, and the server answers them with 200.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy.ext.asyncio import AsyncSession

import api.mail
from api import clock
from api.config import settings
from api.db import create_engine
from api.events.models import Event
from api.events.notices import event_summary
from api.mail.service import render
from api.registrations.models import Registration
from api.reminders import cant_come
from api.users.models import User, UserRole
from tests.browser.conftest import DESKTOP, Site, html_part, new_email, register
from tests.factories import create_event, create_user
from tests.factories import register as register_seat

TEMPLATES = sorted(
    path.stem
    for path in (Path(api.mail.__file__).parent / "templates").glob("*.html")
    if not path.name.startswith("_")
)
ZONE = "America/New_York"
# Markup characters in the title: the mail must show them as text.
TITLE = "Rooftop mixer: Hudson & Co <NYC>"


@dataclass(frozen=True)
class World:
    """What the mails talk about, committed on the server's database."""

    site: Site
    attendee: User
    other: User
    event: Event
    registration: Registration


def local_moment(days: int, hour: int, minute: int = 0) -> datetime:
    """`hour`:`minute` on the wall clock of ZONE, `days` from today."""
    day = (clock.now() + timedelta(days=days)).astimezone(ZoneInfo(ZONE)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(ZONE))


@pytest.fixture(scope="module")
async def world(site: Site) -> AsyncIterator[World]:
    engine = create_engine(site.database_url, pool_size=2)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        manager = await create_user(session, role=UserRole.MANAGER)
        attendee = await create_user(session, first_name="Ada", last_name="Lovelace")
        other = await create_user(
            session, first_name="Grace", last_name="Hopper", nickname="grace_h"
        )
        starts_at = local_moment(days=10, hour=10)
        event = await create_event(
            session,
            owner=manager,
            title=TITLE,
            timezone=ZONE,
            starts_at=starts_at.astimezone(UTC),
            ends_at=(starts_at + timedelta(hours=2)).astimezone(UTC),
            location="Hudson Yards, New York",
        )
        registration = await register_seat(session, event, attendee)
        await session.commit()
    yield World(site, attendee, other, event, registration)
    await engine.dispose()


@dataclass(frozen=True)
class Link:
    """A link a mail must hold: its path, and the text of the page it opens when the test
    follows it (None: not followed, as a route that needs a login)."""

    path: str
    lands_on: str | None = None


@dataclass
class Example:
    html: str
    texts: list[str]
    links: list[Link]
    # The event the mail is about, and other moments it shows in the event's time zone.
    event: Event | None = None
    moments: list[datetime] = field(default_factory=list)


def rendered(world: World, template: str, **context: Any) -> str:
    attendee = world.attendee
    return render(template, attendee.email, name=attendee.display_name, **context).html


def about_event(world: World, template: str, texts: list[str], **context: Any) -> Example:
    """A mail about the world's event whose one link is the event's."""
    html = rendered(world, template, event=event_summary(world.event), **context)
    return Example(html, texts, [event_link(world)], world.event)


def event_link(world: World) -> Link:
    return Link(f"/api/v1/events/{world.event.id}", lands_on=world.event.title)


def who(world: World) -> dict[str, str]:
    """How the connection notices name the other party (api.networking.connections._who)."""
    return {"name": "Grace Hopper", "nickname": world.other.nickname}


async def verify_email(world: World) -> Example:
    email = new_email("mail")
    await register(world.site, email)
    html = html_part(await world.site.mail("verify_email", email))
    texts = ["Please confirm your email address", "The link expires in 24 hours."]
    return Example(html, texts, [Link("/verify-email", lands_on="Verify your email")])


async def reset_password(world: World) -> Example:
    email = new_email("mail")
    await register(world.site, email)
    async with world.site.client() as client:
        asked = await client.post("/api/v1/auth/forgot-password", json={"email": email})
    assert asked.status_code == 202
    html = html_part(await world.site.mail("reset_password", email))
    texts = ["Someone asked to reset the password", "expires in 1 hour and works once"]
    return Example(html, texts, [Link("/reset-password", lands_on="Choose a new password")])


async def account_locked(world: World) -> Example:
    html = rendered(world, "account_locked", attempts=5, until="2031-03-04 09:15")
    texts = ["locked after 5 failed sign-in attempts until 2031-03-04 09:15 UTC"]
    return Example(html, texts, [])


async def role_changed(world: World) -> Example:
    html = rendered(
        world, "role_changed", old_role="AUTHENTICATED", new_role="MANAGER", reason="Runs meetups"
    )
    return Example(html, ["changed from AUTHENTICATED to MANAGER", "Reason: Runs meetups"], [])


async def professional_status_changed(world: World) -> Example:
    html = rendered(
        world, "professional_status_changed", is_professional=True, reason="Employer checked"
    )
    texts = ["Your professional status is now: professional.", "Reason: Employer checked"]
    return Example(html, texts, [])


async def webhook_disabled(world: World) -> Example:
    webhook_id = uuid.uuid4()
    html = rendered(
        world,
        "webhook_disabled",
        webhook_id=webhook_id,
        url="https://crm.example.com/hooks",
        reason="GONE",
    )
    texts = [
        "Your event-manager webhook to https://crm.example.com/hooks was disabled: "
        "the receiver answered 410 Gone.",
        f"PATCH /api/v1/webhooks/{webhook_id}",
    ]
    return Example(html, texts, [])


async def event_submitted(world: World) -> Example:
    return about_event(world, "event_submitted", ["A new event awaits approval"])


async def event_approved(world: World) -> Example:
    return about_event(world, "event_approved", ["was approved and is now published"])


async def event_rejected(world: World) -> Example:
    texts = ["was not approved", "Please add an agenda."]
    return about_event(world, "event_rejected", texts, feedback="Please add an agenda.")


async def event_updated(world: World) -> Example:
    return about_event(world, "event_updated", ["at Hudson Yards, New York"])


async def event_cancelled(world: World) -> Example:
    html = rendered(
        world, "event_cancelled", event=event_summary(world.event), reason="The venue flooded."
    )
    return Example(html, ["is cancelled", "Reason: The venue flooded."], [], world.event)


async def event_reminder(world: World) -> Example:
    """As the reminder job writes it: the attendee's own can't-come link, for a live seat."""
    token = cant_come.issue_token(
        world.registration, starts_at=world.event.starts_at, hours_before=24
    )
    example = about_event(
        world,
        "event_reminder",
        ["A reminder:", "Where: Hudson Yards, New York"],
        hours_before=24,
        cant_come_url=cant_come.link(token),
    )
    example.links.append(Link(cant_come.PATH, lands_on="Can't come?"))
    return example


async def registration_confirmed(world: World) -> Example:
    texts = ["is confirmed", "Where: Hudson Yards, New York"]
    return about_event(world, "registration_confirmed", texts, waitlist_position=None)


async def waitlist_promoted(world: World) -> Example:
    return about_event(world, "waitlist_promoted", ["your place at", "is now confirmed"])


async def waitlist_offer(world: World) -> Example:
    expires_at = local_moment(days=9, hour=18, minute=30)
    url = event_summary(world.event)["url"]
    texts = [f"POST {url}/registrations/me/accept", f"POST {url}/registrations/me/decline"]
    example = about_event(
        world,
        "waitlist_offer",
        texts,
        registration_id=world.registration.id,
        offer_expires_at=expires_at.astimezone(UTC),
    )
    example.moments.append(expires_at)
    return example


async def waitlist_offer_expired(world: World) -> Example:
    return about_event(world, "waitlist_offer_expired", ["the offer has expired"])


async def connection_requested(world: World) -> Example:
    connection_id = uuid.uuid4()
    html = rendered(
        world,
        "connection_requested",
        event=event_summary(world.event),
        connection_id=connection_id,
        user_id=world.other.id,
        other=who(world),
    )
    texts = [
        f"Grace Hopper (@{world.other.nickname}) met you at",
        f"POST {world.site.base_url}/api/v1/connections/{connection_id}/accept",
    ]
    return Example(html, texts, [Link("/api/v1/users/me/connections")], world.event)


async def connection_accepted(world: World) -> Example:
    html = rendered(
        world,
        "connection_accepted",
        event=event_summary(world.event),
        connection_id=uuid.uuid4(),
        user_id=world.other.id,
        other=who(world),
    )
    texts = [f"Grace Hopper (@{world.other.nickname}) accepted your connection request"]
    links = [Link("/api/v1/users/me/connections"), Link("/api/v1/users/me/connections.vcf")]
    return Example(html, texts, links, world.event)


EXAMPLES: dict[str, Callable[[World], Awaitable[Example]]] = {
    example.__name__: example
    for example in (
        verify_email,
        reset_password,
        account_locked,
        role_changed,
        professional_status_changed,
        webhook_disabled,
        event_submitted,
        event_approved,
        event_rejected,
        event_updated,
        event_cancelled,
        event_reminder,
        registration_confirmed,
        waitlist_promoted,
        waitlist_offer,
        waitlist_offer_expired,
        connection_requested,
        connection_accepted,
    )
}


def test_every_template_has_an_example() -> None:
    assert sorted(EXAMPLES) == TEMPLATES


def assert_local_time(text: str, moment: datetime, zone: str) -> None:
    """`moment` shows on the zone's wall clock (date and time), and not as UTC."""
    local, utc = moment.astimezone(ZoneInfo(zone)), moment.astimezone(UTC)
    assert f"{local:%d %b %Y}" in text
    assert f"{local:%H:%M}" in text
    assert f"{utc:%H:%M}" not in text


async def follow(page: Page, html: str, index: int) -> tuple[int, str]:
    """Click the mail's `index`th link: the status of the page it opens, and its text."""
    await page.set_content(html)
    async with page.expect_navigation() as navigation:
        await page.locator("a[href]").nth(index).click()
    response = await navigation.value
    return response.status, await page.inner_text("body")


@pytest.mark.parametrize("template", TEMPLATES)
async def test_mail_in_chromium(
    browser: Browser,
    world: World,
    screenshots: Path,
    monkeypatch: pytest.MonkeyPatch,
    template: str,
) -> None:
    # Rendered here as the server would: its links start with the server's address.
    monkeypatch.setattr(settings, "PUBLIC_BASE_URL", world.site.base_url)
    example = await EXAMPLES[template](world)
    # A mail program runs no script.
    context = await browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = await context.new_page()

    await page.set_content(example.html)

    text = await page.inner_text("body")
    await page.screenshot(path=screenshots / f"mail-{template}.png", full_page=True)
    assert text.startswith("Hello ")
    for expected in example.texts:
        assert expected in text
    if example.event is not None:
        assert example.event.title in text
        for moment in [example.event.starts_at, *example.moments]:
            assert_local_time(text, moment, example.event.timezone)
    hrefs = await page.locator("a[href]").evaluate_all(
        "links => links.map(link => link.getAttribute('href'))"
    )
    assert [urlsplit(href).path for href in hrefs] == [link.path for link in example.links]
    assert all(href.startswith(f"{world.site.base_url}/") for href in hrefs)
    for index, link in enumerate(example.links):
        if link.lands_on is not None:
            status, landed = await follow(page, example.html, index)
            assert status == 200
            assert link.lands_on in landed
    await context.close()
