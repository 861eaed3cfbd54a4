"""The two HTML pages behind a reminder's "can't come" link (API-attendees.md, Reminders).

GET only shows a confirmation form (mail scanners that prefetch links give up nothing); the
form's POST gives the seat up. Like the verify and reset pages they are not in the OpenAPI
document, and a link that does not work is a page that says so, with status 400.
"""

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from api.db import SessionDep
from api.events.notices import event_summary
from api.pages import Pages
from api.reminders import cant_come

router = APIRouter(include_in_schema=False)

_pages = Pages("api.reminders")


def _bad_link() -> HTMLResponse:
    return _pages.bad_link("can't-come")


@router.get(cant_come.PATH, response_class=HTMLResponse)
async def cant_come_page(session: SessionDep, token: str = "") -> HTMLResponse:
    try:
        seat = await cant_come.seat_for(session, token)
    except cant_come.InvalidLink:
        return _bad_link()
    return _pages.page("cant_come.html", token=token, event=event_summary(seat.event))


@router.post(cant_come.PATH, response_class=HTMLResponse)
async def cant_come_submit(session: SessionDep, token: Annotated[str, Form()] = "") -> HTMLResponse:
    try:
        seat = await cant_come.give_up_seat(session, token)
    except cant_come.InvalidLink:
        return _bad_link()
    return _pages.message(
        "Registration cancelled",
        f'You are no longer registered for "{seat.event.title}". '
        "Your seat is free for someone else. Thank you for letting us know.",
    )
