"""Loading a named job for the job route, after the admin check (403 before 404)."""

from typing import Annotated

from fastapi import Depends, Path

from api.testing import service as testing_service
from api.users.auth import AdminUser
from api.worker import RUNNABLE_JOBS

JOB_NAME = Path(
    max_length=100,
    description=f"The job to run: {', '.join(sorted(RUNNABLE_JOBS))} (another name: 404).",
)


async def get_job_or_404(name: Annotated[str, JOB_NAME], _: AdminUser) -> testing_service.NamedJob:
    """An admin: the job of that name, else 404 JOB_NOT_FOUND."""
    job = RUNNABLE_JOBS.get(name)
    if job is None:
        raise testing_service.JobNotFound()
    return testing_service.NamedJob(name, job)


JobDep = Annotated[testing_service.NamedJob, Depends(get_job_or_404)]
