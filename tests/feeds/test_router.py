"""The calendar feed routes (API-integrations.md, Calendar feed): the URL made once and kept,
rotation, who may open the feed (anyone with the URL, whatever Authorization says, unless the
owner is deactivated or gone), and conditional GETs."""

import re
import secrets
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from api import clock
from api.config import settings
from api.feeds.models import CalendarFeed
from api.tokens.models import Scope
from tests.factories import api_token_headers, create_event, register
from tests.feeds.conftest import FEED, PUBLIC_PREFIX, Clock, feed_path, read_feed, vevents

ROTATE = f"{FEED}/rotate"
URL = re.compile(r"http://testserver/api/v1/calendar/([A-Za-z0-9_-]{32})\.ics")
NOT_FOUND = {"detail": "CALENDAR_FEED_NOT_FOUND"}
UNAUTHORIZED = {"detail": "UNAUTHORIZED"}


def token_of(url: str) -> str:
    match = URL.fullmatch(url)
    assert match is not None, url
    return match.group(1)


async def feeds_of(session, user) -> int:
    count = await session.scalar(
        select(func.count()).select_from(CalendarFeed).where(col(CalendarFeed.user_id) == user.id)
    )
    return int(count or 0)


class TestGetCalendarFeed:
    async def test_made_on_the_first_call_then_the_same(self, client, session, user, auth_as):
        headers = await auth_as(user)
        assert await feeds_of(session, user) == 0

        first = await client.get(FEED, headers=headers)
        second = await client.get(FEED, headers=headers)

        assert first.status_code == second.status_code == 200
        assert first.json() == second.json()
        assert set(first.json()) == {"url", "created_at"}
        token_of(first.json()["url"])
        assert await feeds_of(session, user) == 1

    async def test_each_user_has_their_own(self, client, user, manager, auth_as):
        mine = await client.get(FEED, headers=await auth_as(user))
        theirs = await client.get(FEED, headers=await auth_as(manager))

        assert token_of(mine.json()["url"]) != token_of(theirs.json()["url"])

    async def test_an_api_token_with_registrations_read(self, client, session, user, auth_as):
        by_login = await client.get(FEED, headers=await auth_as(user))
        headers = await api_token_headers(session, user, [Scope.REGISTRATIONS_READ])

        by_api_token = await client.get(FEED, headers=headers)

        assert by_api_token.status_code == 200
        assert by_api_token.json() == by_login.json()

    async def test_anonymous_401(self, client):
        response = await client.get(FEED)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == "Bearer"

    @pytest.mark.security("PRIV-1")
    async def test_only_a_hash_of_the_token_is_stored(self, client, session, user, auth_as):
        token = token_of((await client.get(FEED, headers=await auth_as(user))).json()["url"])

        feed = await session.scalar(
            select(CalendarFeed).where(col(CalendarFeed.user_id) == user.id)
        )

        assert feed is not None
        assert token not in (feed.nonce, feed.token_hash)

    async def test_a_new_signing_key_gives_a_new_url(self, client, user, auth_as, monkeypatch):
        headers = await auth_as(user)
        old = await feed_path(client, headers)
        monkeypatch.setattr(settings, "SECRET_KEY", secrets.token_urlsafe(32))

        new = await feed_path(client, headers)

        assert new != old
        assert (await client.get(old)).json() == NOT_FOUND
        assert (await client.get(new)).status_code == 200


class TestRotateCalendarFeed:
    async def test_the_old_url_404_at_once_the_new_one_200(
        self, client, session, user, auth_as, moving_clock: Clock
    ):
        headers = await auth_as(user)
        old = (await client.get(FEED, headers=headers)).json()
        rotated_at = moving_clock.advance(minutes=5)

        rotated = await client.post(ROTATE, headers=headers)

        assert rotated.status_code == 200
        body = rotated.json()
        assert body["url"] != old["url"]
        assert datetime.fromisoformat(body["created_at"]) == rotated_at
        assert datetime.fromisoformat(old["created_at"]) == rotated_at - timedelta(minutes=5)
        old_path = old["url"].removeprefix(PUBLIC_PREFIX)
        gone = await client.get(old_path)
        assert (gone.status_code, gone.json()) == (404, NOT_FOUND)
        assert (await client.get(body["url"].removeprefix(PUBLIC_PREFIX))).status_code == 200
        # GET shows the new URL from now on.
        assert (await client.get(FEED, headers=headers)).json() == body
        assert await feeds_of(session, user) == 1

    async def test_rotating_before_any_get_makes_the_feed(self, client, session, user, auth_as):
        rotated = await client.post(ROTATE, headers=await auth_as(user))

        assert rotated.status_code == 200
        token_of(rotated.json()["url"])
        assert await feeds_of(session, user) == 1

    async def test_anonymous_401(self, client):
        response = await client.post(ROTATE)

        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)

    async def test_an_api_token_403(self, client, session, user):
        headers = await api_token_headers(session, user)

        response = await client.post(ROTATE, headers=headers)

        assert response.status_code == 403
        assert response.json()["detail"]["code"] == "INSUFFICIENT_SCOPE"


class TestOpenTheFeed:
    @pytest.mark.parametrize(
        "token",
        [
            "x" * 32,
            "x" * 31,
            "x" * 33,
            "a" * 31 + "!",
            "%00" * 4,
            "ÿ" * 32,
        ],
    )
    async def test_unknown_or_malformed_404(self, client, token):
        response = await client.get(f"/api/v1/calendar/{token}.ics")

        assert (response.status_code, response.json()) == (404, NOT_FOUND)

    async def test_a_deactivated_owners_feed_404(self, client, session, user, auth_as):
        path = await feed_path(client, await auth_as(user))
        user.is_active = False
        session.add(user)
        await session.flush()

        response = await client.get(path)

        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        user.is_active = True
        session.add(user)
        await session.flush()
        assert (await client.get(path)).status_code == 200

    async def test_account_deletion_removes_the_feed(self, client, session, user, auth_as):
        headers = await auth_as(user)
        path = await feed_path(client, headers)

        deleted = await client.delete("/api/v1/users/me", headers=headers)

        assert deleted.status_code == 204
        assert (
            await session.scalar(
                select(func.count())
                .select_from(CalendarFeed)
                .where(col(CalendarFeed.user_id) == user.id)
            )
            == 0
        )
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)

    async def test_authorization_changes_nothing(self, client, session, user, manager, auth_as):
        event = await create_event(session, owner=manager)
        await register(session, event, user)
        login = await auth_as(user)
        path = await feed_path(client, login)
        dead = await auth_as(manager)
        assert (await client.post("/api/v1/auth/logout", headers=dead)).status_code == 204
        no_scope = await api_token_headers(session, user, [Scope.EVENTS_READ])
        expired = await api_token_headers(
            session, user, expires_at=clock.now() - timedelta(seconds=1)
        )
        variants: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer garbage"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": ""},
            {"Authorization": "Bearer em_pat_" + "x" * 43},
            dead,
            no_scope,
            expired,
            login,
        ]

        answers = [await client.get(path, headers=headers) for headers in variants]
        unknown = [
            await client.get(f"/api/v1/calendar/{'y' * 32}.ics", headers=headers)
            for headers in variants
        ]

        assert {(r.status_code, r.content) for r in answers} == {(200, answers[0].content)}
        assert f"{event.id}@testserver" in vevents(await read_feed(client, path))
        assert {(r.status_code, r.text) for r in unknown} == {
            (404, '{"detail":"CALENDAR_FEED_NOT_FOUND"}')
        }


class TestConditionalGet:
    async def test_etag_and_304(self, client, session, user, manager, auth_as):
        event = await create_event(session, owner=manager)
        await register(session, event, user)
        path = await feed_path(client, await auth_as(user))

        first = await client.get(path)
        tag = first.headers["ETag"]
        again = await client.get(path)
        unchanged = await client.get(path, headers={"If-None-Match": tag})
        weak = await client.get(path, headers={"If-None-Match": f'"other", W/{tag}'})
        star = await client.get(path, headers={"If-None-Match": "*"})
        other = await client.get(path, headers={"If-None-Match": '"other"'})

        assert first.status_code == 200
        assert re.fullmatch(r'"[0-9a-f]{32}"', tag)
        assert first.headers["Cache-Control"] == "private, no-cache"
        assert again.headers["ETag"] == tag
        assert again.content == first.content
        for response in (unchanged, weak, star):
            assert response.status_code == 304
            assert response.content == b""
            assert response.headers["ETag"] == tag
        assert other.status_code == 200
        assert other.content == first.content

    async def test_a_change_gives_a_new_etag(self, client, session, user, manager, auth_as):
        event = await create_event(session, owner=manager)
        await register(session, event, user)
        path = await feed_path(client, await auth_as(user))
        tag = (await client.get(path)).headers["ETag"]

        patched = await client.patch(
            f"/api/v1/events/{event.id}", headers=await auth_as(manager), json={"title": "Renamed"}
        )
        assert patched.status_code == 200
        response = await client.get(path, headers={"If-None-Match": tag})

        assert response.status_code == 200
        assert response.headers["ETag"] != tag
