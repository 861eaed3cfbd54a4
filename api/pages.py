"""The service's few HTML pages (verify email, reset password, can't come): one layout, one
message page and the headers API.md asks of them.

Each page is a form that works without JavaScript. The Content-Security-Policy allows nothing
but the layout's inline style and a form posted back to this origin, and no page may be framed;
Referrer-Policy keeps the token in the page's address from leaving in a Referer header.
"""

from fastapi import status
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


class Pages:
    """Renders the templates of `package` (its `templates` folder) over the shared layout."""

    def __init__(self, package: str) -> None:
        self._templates = Environment(
            loader=ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("api")]),
            autoescape=select_autoescape(["html"]),
        )

    def page(
        self, template: str, status_code: int = status.HTTP_200_OK, **context: object
    ) -> HTMLResponse:
        body = self._templates.get_template(template).render(context)
        return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS)

    def message(
        self, title: str, message: str, status_code: int = status.HTTP_200_OK
    ) -> HTMLResponse:
        return self.page("message.html", status_code, title=title, message=message)

    def bad_link(self, what: str) -> HTMLResponse:
        """A link that does not work: a page that says so, with status 400."""
        return self.message(
            "This link does not work",
            f"The {what} link is invalid, expired or already used.",
            status.HTTP_400_BAD_REQUEST,
        )
