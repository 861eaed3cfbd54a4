"""The networking directory and connections (API-attendees.md): opting in and out of an event's
directory, reading it, asking its members to connect, answering, and the caller's contacts (a
page, or vCards). The rules are in api/networking/service.py (the directory) and
api/networking/connections.py; who may read a directory in api/networking/dependencies.py.

API tokens: the directory and the connections belong to attending an event, so they take the
registrations scopes, as the caller's own registration routes do: registrations:read to read,
registrations:write to change.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.db import SessionDep
from api.errors import Unauthorized
from api.events import queries as event_queries
from api.networking import connections as connection_service
from api.networking import service as directory_service
from api.networking import vcard
from api.networking.dependencies import AttendedEventDep, DirectoryEventDep, KeySharedEventDep
from api.networking.models import (
    ConnectionCreate,
    ConnectionPage,
    ConnectionPublic,
    ConnectionStatus,
    DirectoryMembership,
    DirectoryPage,
)
from api.openapi import error_responses
from api.pagination import PageParamsDep
from api.tokens.dependencies import token_scope
from api.tokens.models import Scope
from api.users.auth import CurrentUser
from api.users.models import UserPublic

router = APIRouter(prefix="/events", tags=["networking"])
connections_router = APIRouter(prefix="/connections", tags=["networking"])
me_router = APIRouter(prefix="/users/me", tags=["networking"])

EVENT_ERRORS = (Unauthorized, event_queries.EventNotFound)
DIRECTORY_ERRORS = (*EVENT_ERRORS, directory_service.NotInDirectory)
ANSWER_ERRORS = (
    Unauthorized,
    connection_service.NotAddressee,
    connection_service.ConnectionNotFound,
)


# --- the directory ----------------------------------------------------------------------------


@router.put(
    "/{event_id}/directory/me",
    summary="Join an event's directory",
    response_model=DirectoryMembership,
    responses=error_responses(*EVENT_ERRORS, directory_service.NotConfirmedAttendee),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def join_event_directory(
    user: CurrentUser, event: KeySharedEventDep, session: SessionDep
) -> DirectoryMembership:
    """Opt into the event's directory (CONFIRMED registrants); again: the same answer. Leaving
    CONFIRMED takes the caller out at once."""
    joined_at = await directory_service.join_directory(session, event=event, user=user)
    return DirectoryMembership(
        event_id=event.id, joined_at=joined_at, user=UserPublic.model_validate(user)
    )


@router.delete(
    "/{event_id}/directory/me",
    summary="Leave an event's directory",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*EVENT_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def leave_event_directory(
    user: CurrentUser, event: AttendedEventDep, session: SessionDep
) -> Response:
    """Opt out of the event's directory (also when not in it): the caller's pending requests
    there are withdrawn; accepted connections stay."""
    await directory_service.leave_directory(session, event=event, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{event_id}/directory",
    summary="List an event's directory",
    response_model=DirectoryPage,
    responses=error_responses(*DIRECTORY_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_event_directory(
    event: DirectoryEventDep,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    is_professional: bool | None = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="first and last name, nickname or bio contains"),
    ] = None,
) -> DirectoryPage:
    """The event's directory by nickname (its members, its creator, managers and admins; also
    after the event): public profiles, never an email."""
    items, total = await directory_service.list_directory(
        session, event=event, params=params, is_professional=is_professional, q=q
    )
    return DirectoryPage.build(items, total=total, params=params, request=request)


# --- connections ------------------------------------------------------------------------------


@router.post(
    "/{event_id}/connections",
    summary="Ask to connect",
    response_model=ConnectionPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        *EVENT_ERRORS,
        connection_service.CannotConnectToSelf,
        directory_service.NotInDirectory,
        connection_service.AttendeeNotFound,
        connection_service.NotCheckedIn,
        connection_service.AlreadyConnected,
        connection_service.ConnectionPending,
    ),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def request_connection(
    connection_in: ConnectionCreate,
    user: CurrentUser,
    event: KeySharedEventDep,
    session: SessionDep,
) -> ConnectionPublic:
    """Ask another member of the event's directory to connect (both checked in): PENDING, and
    they are told. A pair of users has one request or connection at most."""
    return await connection_service.request_connection(
        session, event=event, requester=user, addressee_id=connection_in.user_id
    )


@connections_router.post(
    "/{connection_id}/accept",
    summary="Accept a connection request",
    response_model=ConnectionPublic,
    responses=error_responses(*ANSWER_ERRORS),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def accept_connection(
    connection_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> ConnectionPublic:
    """Accept a request made to the caller: ACCEPTED, the two emails shared, the requester told
    (again: the connection unchanged)."""
    return await connection_service.accept_connection(
        session, connection_id=connection_id, addressee=user
    )


@connections_router.post(
    "/{connection_id}/decline",
    summary="Decline a connection request",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*ANSWER_ERRORS, connection_service.AlreadyConnected),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def decline_connection(
    connection_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Decline a request made to the caller: it is deleted, and the requester is not told."""
    await connection_service.decline_connection(
        session, connection_id=connection_id, addressee=user
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@connections_router.delete(
    "/{connection_id}",
    summary="Delete a connection",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, connection_service.ConnectionNotFound),
    openapi_extra=token_scope(Scope.REGISTRATIONS_WRITE),
)
async def delete_connection(
    connection_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Withdraw a request or end a connection (either party); the other is not told."""
    await connection_service.delete_connection(session, connection_id=connection_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me_router.get(
    "/connections",
    summary="List your connections",
    response_model=ConnectionPage,
    responses=error_responses(Unauthorized),
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def list_my_connections(
    user: CurrentUser,
    session: SessionDep,
    params: PageParamsDep,
    request: Request,
    connection_status: Annotated[
        ConnectionStatus, Query(alias="status", description="ACCEPTED (default) or PENDING")
    ] = ConnectionStatus.ACCEPTED,
) -> ConnectionPage:
    """The caller's connections, newest first, both directions: ACCEPTED ones with the other's
    email, or the PENDING requests made and received."""
    items, total = await connection_service.list_connections(
        session, user=user, status=connection_status, params=params
    )
    return ConnectionPage.build(items, total=total, params=params, request=request)


@me_router.get(
    "/connections.vcf",
    summary="Export your connections as vCards",
    response_class=Response,
    responses={
        200: {"content": {vcard.CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **error_responses(Unauthorized),
    },
    openapi_extra=token_scope(Scope.REGISTRATIONS_READ),
)
async def export_my_connections(user: CurrentUser, session: SessionDep) -> Response:
    """The caller's accepted connections as vCard 3.0, one card each (empty when none): name,
    nickname, email, LinkedIn and GitHub profiles, where they met."""
    contacts = await connection_service.all_connections(
        session, user_id=user.id, status=ConnectionStatus.ACCEPTED
    )
    # Serialising the cards costs CPU per contact: off the event loop, which others share.
    body = await run_in_threadpool(vcard.vcards, contacts)
    return Response(
        body,
        media_type=vcard.CONTENT_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{vcard.FILENAME}"',
            "Cache-Control": "private, no-store",
        },
    )
