"""The inbox (/notifications) and the notification preferences of the caller."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from pydantic import Field, RootModel
from typing_extensions import TypeAliasType

from api.db import SessionDep
from api.errors import Unauthorized
from api.examples import examples, page_example
from api.notifications import examples as notification_examples
from api.notifications import service as notification_service
from api.notifications.models import (
    ChannelSettings,
    ChannelUpdate,
    NotificationKind,
    NotificationPublic,
)
from api.openapi import error_responses
from api.pagination import Page, PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser

router = APIRouter(prefix="/notifications", tags=["notifications"])
preferences_router = APIRouter(prefix="/users/me", tags=["notifications"])

# The answer's example: every kind, as a new account has them, with PREFERENCE_CHANGES made.
PREFERENCES = {
    kind.value: {"email": True, "in_app": True}
    | notification_examples.PREFERENCE_CHANGES.get(kind.value, {})
    for kind in NotificationKind
}
# A named type: one schema of its own in the OpenAPI document, and one class in clients.
NotificationPreferences = TypeAliasType(
    "NotificationPreferences",
    Annotated[dict[NotificationKind, ChannelSettings], Field(examples=[PREFERENCES])],
)


class NotificationPreferenceChanges(RootModel[dict[NotificationKind, ChannelUpdate]]):
    """The kinds to change, each with the channels to turn on or off."""

    model_config = examples(notification_examples.PREFERENCE_CHANGES)


class NotificationPage(Page[NotificationPublic]):
    model_config = examples(
        {
            **page_example([notification_examples.NOTIFICATION], "/api/v1/notifications"),
            "unread_count": 3,
        }
    )

    unread_count: int


@router.get(
    "",
    summary="List your notifications",
    response_model=NotificationPage,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.NOTIFICATIONS_READ),
)
async def list_notifications(
    user: CurrentUser,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    unread: bool | None = None,
) -> NotificationPage:
    """The caller's notifications, newest first; `unread=true` for the unread ones."""
    items, total, unread_count = await notification_service.list_notifications(
        session, user=user, params=params, unread=unread
    )
    return NotificationPage.build(
        [NotificationPublic.model_validate(row._asdict()) for row in items],
        total=total,
        params=params,
        request=request,
        unread_count=unread_count,
    )


@router.post(
    "/read-all",
    summary="Mark all notifications read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.NOTIFICATIONS_WRITE),
)
async def mark_all_notifications_read(user: CurrentUser, session: SessionDep) -> Response:
    """Mark every notification of the caller read."""
    await notification_service.mark_all_read(session, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{notification_id}/read",
    summary="Mark a notification read",
    response_model=NotificationPublic,
    responses=error_responses(Unauthorized, notification_service.NotificationNotFound),
    openapi_extra=token_scope(Scope.NOTIFICATIONS_WRITE),
)
async def mark_notification_read(
    notification_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> NotificationPublic:
    """Mark one of the caller's notifications read (404 for anyone else's)."""
    notification = await notification_service.mark_read(
        session, user=user, notification_id=notification_id
    )
    return NotificationPublic.model_validate(notification)


@preferences_router.get(
    "/notification-preferences",
    summary="Get your notification preferences",
    response_model=NotificationPreferences,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.NOTIFICATIONS_READ),
)
async def get_notification_preferences(
    user: CurrentUser, session: SessionDep
) -> NotificationPreferences:
    """Email and in-app switches for every kind of notification (both on by default)."""
    return await notification_service.get_preferences(session, user=user)


@preferences_router.patch(
    "/notification-preferences",
    summary="Update your notification preferences",
    response_model=NotificationPreferences,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.NOTIFICATIONS_WRITE),
)
async def update_notification_preferences(
    changes: NotificationPreferenceChanges, user: CurrentUser, session: SessionDep
) -> NotificationPreferences:
    """Turn email or in-app delivery of some kinds on or off; unknown kinds are a 422."""
    return await notification_service.update_preferences(session, user=user, changes=changes.root)
