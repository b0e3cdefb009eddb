from dataclasses import dataclass, field
from pathlib import Path

import pytest

from approvals.models import AccessRequest, Status
from approvals.services.requests import credentials_reveal, request_approve, request_revoke
from awsaccess.types import IssuedCredentials
from tests.aws_profile import SandboxProfile, sandbox_profile
from tests.broker import drain_task_messages
from tests.conftest import Cast, fresh_code
from tests.processes import ManagedProcess, celery_beat, celery_worker, child_env, wait_until

SWEEP_SECONDS = 2


@dataclass
class Live:
    """A cast, a sandbox-backed profile, and real worker/beat processes on demand."""

    cast: Cast
    aws: SandboxProfile
    log_dir: Path
    env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self) -> ManagedProcess:
        worker = celery_worker(self.log_dir, self.env).start(ready_text="ready.", timeout=40)
        self.processes.append(worker)
        return worker

    def start_beat(self) -> ManagedProcess:
        beat = celery_beat(self.log_dir, self.env).start(ready_text="beat: Starting", timeout=30)
        self.processes.append(beat)
        return beat

    def open_approved(self, **overrides) -> AccessRequest:
        access_request = self.cast.open_request(profile_slug=self.aws.profile.slug, **overrides)
        for approver in (self.cast.alice, self.cast.bob):
            request_approve(
                access_request_id=access_request.pk,
                approver=approver,
                otp_code=fresh_code(approver),
            )
        return access_request

    def reveal(self, access_request) -> IssuedCredentials:
        """The requester's credentials, as the request page shows them."""
        return credentials_reveal(
            access_request_id=access_request.pk,
            user=self.cast.requester,
            otp_code=fresh_code(self.cast.requester),
        )

    def revoke(
        self, access_request, *, by=None, reason: str = "Incident resolved."
    ) -> AccessRequest:
        """Revoke as `by` (the requester unless given) and wait until the worker has revoked."""
        actor = by or self.cast.requester
        request_revoke(
            access_request_id=access_request.pk,
            actor=actor,
            otp_code=fresh_code(actor),
            reason=reason,
        )
        return self.wait_for_status(access_request, Status.REVOKED)

    def wait_for_status(
        self, access_request, status: Status, *, timeout: float = 30
    ) -> AccessRequest:
        def reached():
            access_request.refresh_from_db()
            return access_request.status == status

        try:
            wait_until(reached, timeout=timeout, what=f"status {status}")
        except TimeoutError:
            logs = "\n".join(p.log_text()[-4000:] for p in self.processes)
            raise AssertionError(
                f"request is {access_request.status}, expected {status}; "
                f"reason={access_request.failure_reason!r}\n{logs}"
            ) from None
        return access_request


@pytest.fixture
def live(cast, aws_sandbox, settings, tmp_path):
    aws = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path,
        approver_group=cast.profile.approver_group,
    )
    env = child_env(
        {
            **aws.env,
            "BREAKGLASS_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
            "BREAKGLASS_ACTIVATION_RETRY_SECONDS": "4",
            "BREAKGLASS_ACTIVATION_ORPHAN_SECONDS": "6",
            "BREAKGLASS_REVOCATION_OVERDUE_SECONDS": "8",
        }
    )
    drain_task_messages(wait=0.1)  # earlier tests' activations must not reach this worker
    harness = Live(cast=cast, aws=aws, log_dir=tmp_path, env=env)
    yield harness
    for process in reversed(harness.processes):
        process.stop()
