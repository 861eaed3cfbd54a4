"""/webhooks: managers' and admins' webhooks, their deliveries, tests and replays."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.openapi import error_responses
from api.outbox.models import DomainEventType
from api.pagination import PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import ManagerUser
from api.webhooks import service as webhook_service
from api.webhooks.dependencies import DeliveryDep, WebhookDep
from api.webhooks.models import (
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookDeliveryPage,
    WebhookDeliveryPublic,
    WebhookPage,
    WebhookPublic,
    WebhookUpdate,
    WebhookWithSecret,
)
from api.webhooks.ssrf import WebhookUrlNotAllowed

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

READ = token_scope(Scope.WEBHOOKS_READ)
WRITE = token_scope(Scope.WEBHOOKS_WRITE)
ACCESS = (Unauthorized, Forbidden, webhook_service.WebhookNotFound)


def _public(webhook: Webhook) -> WebhookPublic:
    return WebhookPublic.model_validate(webhook)


@router.post(
    "",
    summary="Create a webhook",
    response_model=WebhookWithSecret,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        Unauthorized, Forbidden, webhook_service.WebhookLimitReached, WebhookUrlNotAllowed
    ),
    openapi_extra=WRITE,
)
async def create_webhook(
    webhook_in: WebhookCreate, owner: ManagerUser, session: SessionDep
) -> WebhookWithSecret:
    """Add a webhook (managers: event.* and registration.* of their own events; admins: any
    type). The signing secret is shown only here."""
    webhook, secret = await webhook_service.create_webhook(
        session, owner=owner, webhook_in=webhook_in
    )
    return WebhookWithSecret.model_validate(webhook, update={"secret": secret})


@router.get(
    "",
    summary="List webhooks",
    response_model=WebhookPage,
    responses=error_responses(Unauthorized, Forbidden),
    openapi_extra=READ,
)
async def list_webhooks(
    viewer: ManagerUser,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    is_active: bool | None = None,
    owner_id: uuid.UUID | None = None,
) -> WebhookPage:
    """Webhooks, newest first: a manager's own, an admin's view of all."""
    webhooks, total = await webhook_service.list_webhooks(
        session, viewer=viewer, params=params, is_active=is_active, owner_id=owner_id
    )
    return WebhookPage.build(
        [_public(webhook) for webhook in webhooks], total=total, params=params, request=request
    )


@router.get(
    "/{webhook_id}",
    summary="Get a webhook",
    response_model=WebhookPublic,
    responses=error_responses(*ACCESS),
    openapi_extra=READ,
)
async def get_webhook(webhook: WebhookDep) -> WebhookPublic:
    """One webhook (its owner, or an admin): subscriptions, state and failures, never the
    secret. Another manager's webhook is not found."""
    return _public(webhook)


@router.patch(
    "/{webhook_id}",
    summary="Update a webhook",
    response_model=WebhookPublic,
    responses=error_responses(*ACCESS, WebhookUrlNotAllowed),
    openapi_extra=WRITE,
)
async def update_webhook(
    webhook_in: WebhookUpdate, webhook: WebhookDep, actor: ManagerUser, session: SessionDep
) -> WebhookPublic:
    """Change a webhook; `is_active: true` re-enables it and clears its failures."""
    updated = await webhook_service.update_webhook(
        session, actor=actor, webhook=webhook, webhook_in=webhook_in
    )
    return _public(updated)


@router.delete(
    "/{webhook_id}",
    summary="Delete a webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*ACCESS),
    openapi_extra=WRITE,
)
async def delete_webhook(webhook: WebhookDep, actor: ManagerUser, session: SessionDep) -> Response:
    """Delete a webhook and its deliveries (its owner, or an admin); audited. Nothing more is
    sent to it."""
    await webhook_service.delete_webhook(session, actor=actor, webhook=webhook)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="Rotate a webhook's signing secret",
    response_model=WebhookWithSecret,
    responses=error_responses(*ACCESS),
    openapi_extra=WRITE,
)
async def rotate_webhook_secret(
    webhook: WebhookDep, actor: ManagerUser, session: SessionDep
) -> WebhookWithSecret:
    """A new signing secret, shown only here; the old one co-signs for 24 hours."""
    secret = await webhook_service.rotate_secret(session, actor=actor, webhook=webhook)
    return WebhookWithSecret.model_validate(webhook, update={"secret": secret})


@router.post(
    "/{webhook_id}/test",
    summary="Send a test event",
    response_model=WebhookDeliveryPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(*ACCESS),
    openapi_extra=WRITE,
)
async def send_webhook_test(webhook: WebhookDep, session: SessionDep) -> WebhookDeliveryPublic:
    """Send a `webhook.test` event to this webhook once, whether it is active or not."""
    delivery = await webhook_service.send_test(session, webhook=webhook)
    return WebhookDeliveryPublic.model_validate(delivery)


@router.get(
    "/{webhook_id}/deliveries",
    summary="List a webhook's deliveries",
    response_model=WebhookDeliveryPage,
    responses=error_responses(*ACCESS),
    openapi_extra=READ,
)
async def list_webhook_deliveries(
    webhook: WebhookDep,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    event_type: Annotated[DomainEventType | None, Query()] = None,
) -> WebhookDeliveryPage:
    """The webhook's deliveries, newest first."""
    deliveries, total = await webhook_service.list_deliveries(
        session, webhook=webhook, params=params, status=status, event_type=event_type
    )
    return WebhookDeliveryPage.build(
        [WebhookDeliveryPublic.model_validate(d) for d in deliveries],
        total=total,
        params=params,
        request=request,
    )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    summary="Get a delivery",
    response_model=WebhookDeliveryPublic,
    responses=error_responses(*ACCESS, webhook_service.DeliveryNotFound),
    openapi_extra=READ,
)
async def get_webhook_delivery(delivery: DeliveryDep) -> WebhookDeliveryPublic:
    """One delivery of the webhook: the payload as sent, and every attempt with its answer."""
    return WebhookDeliveryPublic.model_validate(delivery)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    summary="Replay a delivery",
    response_model=WebhookDeliveryPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        *ACCESS, webhook_service.DeliveryNotFound, webhook_service.DeliveryPending
    ),
    openapi_extra=WRITE,
)
async def replay_webhook_delivery(
    delivery: DeliveryDep, session: SessionDep
) -> WebhookDeliveryPublic:
    """Send a finished delivery again, once, with its webhook-id."""
    replayed = await webhook_service.replay(session, found=delivery)
    return WebhookDeliveryPublic.model_validate(replayed)
