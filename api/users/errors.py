"""The account errors, with fastapi-users' codes where it has one (kept as they are, API.md).

fastapi-users raises the codes of its own routes (register, login, verify, reset-password) as
HTTPException; the classes below name them for the OpenAPI document (api.users.openapi), and
are raised where our own code answers with the same codes (POST /users, PATCH /users/me).
"""

from fastapi_users.router.common import ErrorCode

from api.errors import AppError


class RegisterUserAlreadyExists(AppError):
    """An account with this email exists (emails compare case-insensitively)."""

    code = ErrorCode.REGISTER_USER_ALREADY_EXISTS.value


class RegisterInvalidPassword(AppError):
    """The password is refused: under 8 characters, over 128, too common, or the email."""

    code = ErrorCode.REGISTER_INVALID_PASSWORD.value
    example_reason = "Password is too common"


class UpdateUserEmailAlreadyExists(AppError):
    """Another account has this email."""

    code = ErrorCode.UPDATE_USER_EMAIL_ALREADY_EXISTS.value


class UpdateUserInvalidPassword(AppError):
    """The new password is refused: under 8 characters, over 128, too common, or the email."""

    code = ErrorCode.UPDATE_USER_INVALID_PASSWORD.value
    example_reason = "Password should be at least 8 characters"


class CurrentPasswordInvalid(AppError):
    """A new password needs `current_password`, and it must be the account's password."""

    code = "CURRENT_PASSWORD_INVALID"
    example_reason = "current_password is not the account's password"


class LoginBadCredentials(AppError):
    """Unknown email, wrong password, or a deactivated account (which of them is not said)."""

    code = ErrorCode.LOGIN_BAD_CREDENTIALS.value


class LoginUserNotVerified(AppError):
    """The email is not verified yet: follow the link of the verification email first."""

    code = ErrorCode.LOGIN_USER_NOT_VERIFIED.value


class LoginAccountLocked(AppError):
    """Locked after MAX_LOGIN_ATTEMPTS wrong passwords: for LOCKOUT_MINUTES, or until a
    manager unlocks it or the password is reset."""

    code = "LOGIN_ACCOUNT_LOCKED"


class VerifyUserBadToken(AppError):
    """The token is malformed, expired, or not for the account's current email."""

    code = ErrorCode.VERIFY_USER_BAD_TOKEN.value


class VerifyUserAlreadyVerified(AppError):
    """The account is verified already (a used token may answer this too)."""

    code = ErrorCode.VERIFY_USER_ALREADY_VERIFIED.value


class ResetPasswordBadToken(AppError):
    """The token is malformed, expired or used, or its account is gone or deactivated."""

    code = ErrorCode.RESET_PASSWORD_BAD_TOKEN.value


class ResetPasswordInvalidPassword(AppError):
    """The new password is refused: under 8 characters, over 128, too common, or the email."""

    code = ErrorCode.RESET_PASSWORD_INVALID_PASSWORD.value
    example_reason = "Password should not be the email"
