"""The two small HTML pages that finish verification and password reset in a browser.

GET only shows a form (mail scanners that prefetch links consume nothing); the form's POST does
the work through the same UserManager methods as the JSON API.
"""

from typing import Annotated

import jwt
from fastapi import APIRouter, Form, status
from fastapi.responses import HTMLResponse
from fastapi_users import exceptions
from fastapi_users.jwt import decode_jwt

from api.pages import Pages
from api.users.dependencies import UserManagerDep
from api.users.passwords import MAX_LENGTH

router = APIRouter(include_in_schema=False)

_pages = Pages("api.users")
_page = _pages.page
_bad_link = _pages.bad_link


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(user_manager: UserManagerDep, token: str = "") -> HTMLResponse:
    try:
        data = decode_jwt(
            token,
            user_manager.verification_token_secret,
            [user_manager.verification_token_audience],
        )
        user = await user_manager.get_by_email(str(data["email"]))
    except (jwt.PyJWTError, KeyError, exceptions.UserNotExists):
        return _bad_link("verification")
    if user.is_verified or str(user.id) != data.get("sub"):
        return _bad_link("verification")
    return _page("verify.html", token=token, email=user.email)


@router.post("/verify-email", response_class=HTMLResponse)
async def verify_email_submit(
    user_manager: UserManagerDep, token: Annotated[str, Form(max_length=4096)] = ""
) -> HTMLResponse:
    try:
        await user_manager.verify(token)
    except (exceptions.InvalidVerifyToken, exceptions.UserAlreadyVerified):
        return _bad_link("verification")
    return _page(
        "message.html",
        title="Email verified",
        message="Your email is verified. You can now log in.",
    )


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(user_manager: UserManagerDep, token: str = "") -> HTMLResponse:
    try:
        await user_manager.user_for_reset_token(token)
    except (exceptions.InvalidResetPasswordToken, exceptions.UserInactive):
        return _bad_link("password reset")
    return _page("reset.html", token=token, max_length=MAX_LENGTH)


@router.post("/reset-password", response_class=HTMLResponse)
async def reset_password_submit(
    user_manager: UserManagerDep,
    token: Annotated[str, Form(max_length=4096)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> HTMLResponse:
    try:
        await user_manager.reset_password(token, password)
    except (exceptions.InvalidResetPasswordToken, exceptions.UserInactive):
        return _bad_link("password reset")
    except exceptions.InvalidPasswordException as e:
        return _page(
            "reset.html",
            status.HTTP_400_BAD_REQUEST,
            token=token,
            max_length=MAX_LENGTH,
            error=e.reason,
        )
    return _page(
        "message.html",
        title="Password changed",
        message="Your password is changed and every session was signed out. Log in again.",
    )
