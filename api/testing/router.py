"""/testing: the test clock and named jobs on demand (ADMIN). Mounted only with
ENVIRONMENT=test: elsewhere these paths answer 404 and are not in the OpenAPI document."""

from fastapi import APIRouter, Response, status

from api.db import SessionDep
from api.errors import Forbidden, Unauthorized
from api.openapi import error_responses
from api.testing import service as testing_service
from api.testing.dependencies import JobDep
from api.testing.models import ClockSet, ClockState, JobRun
from api.users.auth import AdminUser

router = APIRouter(prefix="/testing", tags=["testing"])


@router.put(
    "/clock",
    summary="Set the test clock",
    response_model=ClockState,
    responses=error_responses(Unauthorized, Forbidden),
)
async def set_clock(clock_in: ClockSet, _: AdminUser, session: SessionDep) -> ClockState:
    """Set "now" for the server and its workers (admins); time runs on from there."""
    return await testing_service.set_clock(session, now=clock_in.now)


@router.delete(
    "/clock",
    summary="Restore real time",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(Unauthorized, Forbidden),
)
async def reset_clock(_: AdminUser, session: SessionDep) -> Response:
    """Restore real time for the server and its workers (admins)."""
    await testing_service.reset_clock(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/jobs/{name}",
    summary="Run a periodic job now",
    response_model=JobRun,
    responses=error_responses(Unauthorized, Forbidden, testing_service.JobNotFound),
)
async def run_job(job: JobDep, session: SessionDep) -> JobRun:
    """Run a periodic job once, now, on the test clock (admins)."""
    return await testing_service.run_job(session, job)
