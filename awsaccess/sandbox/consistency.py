"""IAM's eventual consistency, on demand: AWS documents that a change "may not be immediately
visible" to reads. Tests switch it on for one role to show the portal never takes a revocation
as done on a read that does not show the deny it wrote (POST /_sandbox/iam/stale-reads)."""

from __future__ import annotations

import threading

from moto.iam.exceptions import NotFoundException
from moto.iam.models import IAMBackend

_lock = threading.Lock()
_stale_reads: dict[str, int] = {}  # role name -> how many more GetRolePolicy reads lag
_original_get_role_policy = IAMBackend.get_role_policy


def stale_reads_set(role_name: str, reads: int) -> dict[str, int]:
    """The role's next `reads` GetRolePolicy answers do not see its inline policies yet (0: off)."""
    with _lock:
        if reads > 0:
            _stale_reads[role_name] = reads
        else:
            _stale_reads.pop(role_name, None)
        return dict(_stale_reads)


def _get_role_policy(self: IAMBackend, role_name: str, policy_name: str) -> tuple[str, str]:
    with _lock:
        lagging = _stale_reads.get(role_name, 0) > 0
        if lagging:
            _stale_reads[role_name] -= 1
    if lagging:  # as a read that reached a replica the write has not yet
        raise NotFoundException(f"Policy Document {policy_name} not attached to role {role_name}")
    return _original_get_role_policy(self, role_name, policy_name)


def install() -> None:
    IAMBackend.get_role_policy = _get_role_policy  # type: ignore[method-assign]  # patching moto in place
