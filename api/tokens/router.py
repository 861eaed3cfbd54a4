"""/users/me/api-tokens: a user's personal API tokens (login tokens only: no scope declared)."""

import uuid

from fastapi import APIRouter, Request, Response, status

from api.db import SessionDep
from api.errors import Unauthorized
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.tokens import service as token_service
from api.tokens.models import ApiTokenCreate, ApiTokenCreated, ApiTokenPage, ApiTokenPublic
from api.users.auth import CurrentUser

router = APIRouter(prefix="/users/me/api-tokens", tags=["api-tokens"])


@router.post(
    "",
    summary="Create an API token",
    response_model=ApiTokenCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(Unauthorized, token_service.ApiTokenLimitReached),
)
async def create_api_token(
    token_in: ApiTokenCreate, user: CurrentUser, session: SessionDep
) -> ApiTokenCreated:
    """Create an API token acting as the caller within `scopes`; the token is shown only here."""
    api_token, token = await token_service.create_token(session, user_id=user.id, token_in=token_in)
    return ApiTokenCreated.model_validate(api_token, update={"token": token})


@router.get(
    "",
    summary="List your API tokens",
    response_model=ApiTokenPage,
    responses=error_responses(Unauthorized),
)
async def list_api_tokens(
    user: CurrentUser, session: SessionDep, params: PageParamsDep, request: Request
) -> ApiTokenPage:
    """The caller's API tokens, newest first, without the tokens; expired ones stay listed."""
    tokens, total = await token_service.list_tokens(session, user_id=user.id, params=params)
    return ApiTokenPage.build(
        [ApiTokenPublic.model_validate(token) for token in tokens],
        total=total,
        params=params,
        request=request,
    )


@router.delete(
    "/{token_id}",
    summary="Revoke an API token",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, token_service.ApiTokenNotFound),
)
async def delete_api_token(token_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """Revoke one of the caller's API tokens: it is refused (401) at once."""
    await token_service.revoke_token(session, user_id=user.id, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
