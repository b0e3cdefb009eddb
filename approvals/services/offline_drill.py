"""The offline path's drill (issue 18): open the kit with the real client and custodians' shares,
prove access, let the running portal reconcile the opening, import the record, rotate the kit,
and prove the old shares and the opened session are refused. Timed beside the online drill.

It opens and rotates the kit for real: the custodians get new shares afterwards.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from approvals.errors import NotFound, PortalError
from approvals.models import AccessProfile, Drill, KitState, OfflineOpening, RequestKind
from approvals.services.drills import POLL_SECONDS, DrillFailed
from approvals.services.offline_kit import kit_record_import, kit_rotate
from awsaccess.errors import AwsError
from awsaccess.probe import credentials_work
from awsaccess.runtime import provisioner_connection
from awsaccess.types import IssuedCredentials

CLIENT_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class OfflineDrillPlan:
    profile_slug: str
    share_files: tuple[Path, ...]
    out_dir: Path  # the rotated kit and its new shares, and the opening's record
    kit_file: Path | None = None  # default: kit-<id>.json beside the first share
    credentials_file: str | None = None  # the provisioner identity, for the rotation
    step_timeout_seconds: float = 120.0


def _client() -> str:
    found = shutil.which("breakglass") or str(Path(sys.executable).parent / "breakglass")
    if not Path(found).exists():
        raise DrillFailed("the breakglass client is not installed (pip install ./cli)")
    return found


def _kit_open(plan: OfflineDrillPlan, kit_file: Path, drill: Drill) -> subprocess.CompletedProcess:
    """The client exactly as custodians run it: nothing of the portal in its environment."""
    command = [_client(), "kit", "open", str(kit_file), "--format", "json"]
    for share in plan.share_files:
        command += ["--share", str(share)]
    command += ["--reason", f"Drill {drill.pk}", "--record-dir", str(plan.out_dir)]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(plan.out_dir)}
    return subprocess.run(  # noqa: S603 (our own client, arguments as a list)
        command,
        capture_output=True,
        text=True,
        env=environment,
        timeout=CLIENT_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _wait_for(predicate: Callable[[], object], timeout: float, failure: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(POLL_SECONDS)
    raise DrillFailed(failure)


def offline_drill_run(*, plan: OfflineDrillPlan, progress: Callable[[str], None]) -> Drill:
    """Run the offline drill and store it (a failed one too, then raised)."""
    profile = AccessProfile.objects.filter(slug=plan.profile_slug).first()
    if profile is None:
        raise NotFound(f"unknown access profile {plan.profile_slug!r}")
    kit = profile.offline_kits.exclude(state=KitState.ROTATED).first()
    if kit is None:
        raise NotFound(f"profile {profile.slug} has no offline kit: create one with kit_create")
    drill = Drill.objects.create(
        profile=profile, started_at=timezone.now(), path=RequestKind.OFFLINE, kit=kit
    )
    try:
        _drill_steps(drill, plan, progress)
    except (DrillFailed, PortalError, AwsError, OSError, subprocess.SubprocessError) as exc:
        drill.failure = str(exc)
        drill.finished_at = timezone.now()
        drill.save()
        raise DrillFailed(str(exc)) from None
    return drill


def _drill_steps(drill: Drill, plan: OfflineDrillPlan, progress: Callable[[str], None]) -> None:
    kit = drill.kit
    assert kit is not None
    kit_file = plan.kit_file or plan.share_files[0].parent / f"kit-{kit.id}.json"
    plan.out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(plan.out_dir.iterdir()):
        raise DrillFailed(f"{plan.out_dir} is not empty: the rotated kit's shares need a new one")
    started = time.monotonic()
    opened = _kit_open(plan, kit_file, drill)
    if opened.returncode != 0:
        raise DrillFailed(f"the kit did not open: {opened.stderr.strip().splitlines()[-1:]}")
    credentials = _credentials(json.loads(opened.stdout))
    if not credentials_work(credentials):
        raise DrillFailed("the kit's credentials were refused by AWS")
    drill.time_to_access_ms = _ms_since(started)
    progress(f"kit {kit.id} opened by the client, credentials work")

    [record_file] = plan.out_dir.glob(f"offline-opening-{kit.id}-*.json")
    signed = json.loads(record_file.read_text())
    source_identity = signed["record"]["source_identity"]
    opening = _wait_for(
        lambda: OfflineOpening.objects.filter(source_identity=source_identity).first(),
        plan.step_timeout_seconds,
        f"the portal did not reconcile {source_identity} within {plan.step_timeout_seconds:.0f}"
        " s: are its worker and beat running?",
    )
    assert isinstance(opening, OfflineOpening)
    drill.request = opening.request
    kit_record_import(signed=signed)
    progress(f"the portal recorded {source_identity} (alarm raised) and imported its record")

    rotated_at = time.monotonic()
    files = kit_rotate(
        kit_id=kit.id,
        out_dir=plan.out_dir,
        connection=provisioner_connection(plan.credentials_file),
    )
    drill.time_to_revoke_ms = _ms_since(rotated_at)
    progress(f"kit rotated: new kit {files.kit.id}, new shares in {plan.out_dir}")
    _wait_for(
        lambda: not credentials_work(credentials),
        plan.step_timeout_seconds,
        "THE OPENED SESSION STILL WORKS after the rotation",
    )
    drill.time_to_refused_ms = _ms_since(rotated_at)
    again = _kit_open(plan, kit_file, drill)
    if again.returncode == 0 or "aws_refused" not in again.stderr:
        raise DrillFailed(f"THE OLD SHARES STILL OPEN THE KIT: {again.stderr.strip()[-300:]}")
    progress("the old shares and the opened session are refused by AWS")
    drill.passed = True
    drill.finished_at = timezone.now()
    drill.save()


def _credentials(found: dict) -> IssuedCredentials:
    return IssuedCredentials(
        access_key_id=found["access_key_id"],
        secret_access_key=found["secret_access_key"],
        session_token=found["session_token"],
        expiration=datetime.fromisoformat(found["expiration"].replace("Z", "+00:00")),
        region=found["region"],
        endpoint_url=found["endpoint_url"],
    )
