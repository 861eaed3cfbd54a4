"""The two HTML pages behind a reminder's "can't come" link (API-attendees.md, Reminders).

GET only shows a confirmation form (mail scanners that prefetch links give up nothing); the
form's POST gives the seat up. Like the verify and reset pages they are not in the OpenAPI
document, and a link that does not work is a page that says so, with status 400.
"""

from typing import Annotated

from fastapi import APIRouter, Form, status
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from api.db import SessionDep
from api.events.notices import event_summary
from api.reminders import cant_come

router = APIRouter(include_in_schema=False)

# The layout and message page of the verify and reset pages, so that all of them look alike.
_pages = Environment(
    loader=ChoiceLoader(
        [PackageLoader("api.reminders", "templates"), PackageLoader("api.users", "templates")]
    ),
    autoescape=select_autoescape(["html"]),
)


def _page(template: str, status_code: int = status.HTTP_200_OK, **context: object) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(template).render(context), status_code=status_code)


def _bad_link() -> HTMLResponse:
    return _page(
        "message.html",
        status.HTTP_400_BAD_REQUEST,
        title="This link does not work",
        message="The can't-come link is invalid, expired or already used.",
    )


@router.get(cant_come.PATH, response_class=HTMLResponse)
async def cant_come_page(session: SessionDep, token: str = "") -> HTMLResponse:
    try:
        seat = await cant_come.seat_for(session, token)
    except cant_come.InvalidLink:
        return _bad_link()
    return _page("cant_come.html", token=token, event=event_summary(seat.event))


@router.post(cant_come.PATH, response_class=HTMLResponse)
async def cant_come_submit(session: SessionDep, token: Annotated[str, Form()] = "") -> HTMLResponse:
    try:
        seat = await cant_come.give_up_seat(session, token)
    except cant_come.InvalidLink:
        return _bad_link()
    return _page(
        "message.html",
        title="Registration cancelled",
        message=f'You are no longer registered for "{seat.event.title}". '
        "Your seat is free for someone else. Thank you for letting us know.",
    )
