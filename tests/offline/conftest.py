"""The offline kit's cast: a sandbox-backed profile (with worker/beat processes on demand),
kits created by the real command, and custodians running the installed `breakglass` client
with nothing of the portal in reach (no settings, no database URL, no broker, no config)."""

import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from breakglass_cli.kit_format import Kit, KitSecrets, kit_load, kit_unseal, share_load
from django.core.management import call_command

from approvals.models import AccessProfile
from tests.processes import wait_until
from tests.worker.conftest import Live, live  # noqa: F401

BREAKGLASS = Path(sys.executable).parent / "breakglass"
RUN_TIMEOUT = 60
# What the portal is made of: the client must open a kit with none of it importable.
PORTAL_MODULES = ("django", "portal", "approvals", "awsaccess", "celery", "psycopg", "redis")
_PORTAL_UNAVAILABLE = f"""
import sys

class PortalUnavailable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {PORTAL_MODULES!r}:
            raise ImportError(f"the portal is down: {{name}} cannot be imported")
        return None

sys.meta_path.insert(0, PortalUnavailable())
"""


def dashboard_kit_state(page: str, kit_id: str) -> str:
    """The state the dashboard's offline-kits table shows for this kit."""
    match = re.search(rf'<tr class="kit-(\w+)">\s*<td><code>{kit_id}</code>', page)
    assert match, f"kit {kit_id} is not on the dashboard"
    return match[1]


def custodian_env(home: Path) -> dict[str, str]:
    """A custodian's machine: PATH and HOME only, no portal settings, database URL or broker,
    and none of the portal's code importable (a sitecustomize refuses it), so an opening that
    works here needs nothing of the portal."""
    blocker = home / "portal-unavailable"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "sitecustomize.py").write_text(_PORTAL_UNAVAILABLE)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(blocker),
    }


@dataclass
class Kits:
    live: Live
    root: Path

    @property
    def profile(self):
        return self.live.aws.profile

    @property
    def sandbox(self):
        return self.live.aws.sandbox

    def create(
        self,
        *,
        custodians: str = "alice,bob,carol",
        threshold: int = 2,
        out: str = "kit",
        profile_slug: str | None = None,
    ):
        """Run kit_create → (kit id, the directory holding the kit and shares)."""
        directory = self.root / out
        stdout = io.StringIO()
        call_command(
            "kit_create",
            profile_slug or self.profile.slug,
            "--custodians",
            custodians,
            "--threshold",
            str(threshold),
            "--out",
            str(directory),
            "--credentials-file",
            str(self.sandbox.state_dir / "provisioner.json"),
            stdout=stdout,
        )
        kit_id = stdout.getvalue().strip().splitlines()[-1]
        return kit_id, directory

    def second_profile(self) -> AccessProfile:
        """Another profile on a fresh role of the sandbox (for a second kit)."""
        other = self.sandbox.new_target()
        return AccessProfile.objects.create(
            slug=f"second-{other.target.role_name[-8:].strip('-')}",
            name="Second",
            account_id=other.target.account_id,
            region=other.target.region,
            role_arn=other.target.role_arn,
            principal_arn=other.target.principal_arn,
            role_max_session_seconds=other.target.max_session_seconds,
            approver_group=self.profile.approver_group,
        )

    def stolen(self) -> tuple[Kit, KitSecrets]:
        """A new kit and what an attacker holding its opened secrets (not just one share) has."""
        kit_id, directory = self.create()
        kit = kit_load(directory / f"kit-{kit_id}.json")
        shares = [share_load(directory / f"share-{n}.txt", kit) for n in ("alice", "bob")]
        return kit, kit_unseal(kit, shares)

    def sts(self, kit: Kit, secrets: KitSecrets, region: str | None = None):
        """STS signed with the kit's own key (what `breakglass kit open` does by hand)."""
        return boto3.client(
            "sts",
            endpoint_url=self.sandbox.endpoint_url,
            region_name=region or kit["region"],
            aws_access_key_id=kit["access_key_id"],
            aws_secret_access_key=secrets.secret_access_key,
            config=Config(retries={"max_attempts": 1}),
        )

    def words(self, share_file: Path, name: str) -> Path:
        """The share's words alone, as a custodian types them from paper (any case)."""
        page = share_file.read_text()
        path = self.root / f"{name}-typed.txt"
        path.write_text("\n".join(page.split("words: ", 1)[1].splitlines()[0].upper().split()))
        return path

    def rotate(self, kit_id: str, *, out: str):
        """Run kit_rotate → (new kit id, the directory holding its kit and shares)."""
        directory = self.root / out
        lines = self.rotate_output(kit_id, "--out", str(directory))
        return lines[-1], directory

    def rotate_output(self, kit_id: str, *args: str) -> list[str]:
        stdout = io.StringIO()
        call_command(
            "kit_rotate",
            kit_id,
            *args,
            "--credentials-file",
            str(self.sandbox.state_dir / "provisioner.json"),
            stdout=stdout,
        )
        return stdout.getvalue().strip().splitlines()

    def open(self, kit_file: Path, *shares: Path, args: tuple[str, ...] = ()):
        """`breakglass kit open` as a custodian runs it, in a fresh working directory."""
        home = self.root / "custodian-home"
        home.mkdir(exist_ok=True)
        command = [str(BREAKGLASS), "kit", "open", str(kit_file)]
        for share in shares:
            command += ["--share", str(share)]
        return subprocess.run(
            [*command, *args],
            cwd=home,
            env=custodian_env(home),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def opened(self, kit_file: Path, *shares: Path, reason: str = "INC-1: portal down") -> dict:
        done = self.open(kit_file, *shares, args=("--reason", reason, "--format", "json"))
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def s3(self, credentials: dict):
        return boto3.client(
            "s3",
            endpoint_url=credentials["endpoint_url"],
            region_name=credentials["region"],
            aws_access_key_id=credentials["access_key_id"],
            aws_secret_access_key=credentials["secret_access_key"],
            aws_session_token=credentials["session_token"],
            config=Config(retries={"max_attempts": 1}),
        )

    def trail(self) -> list[dict]:
        url = f"{self.sandbox.endpoint_url}/_sandbox/cloudtrail/events?limit=10000"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())["records"]

    def calls_with_key(self, access_key_id: str) -> list[dict]:
        """Every call AWS received signed with this key (the sandbox's CloudTrail, once its
        trail worker has delivered every call served so far)."""
        self.sandbox.trail_idle()
        return [
            record
            for record in self.trail()
            if (record.get("userIdentity") or {}).get("accessKeyId") == access_key_id
        ]

    def assume_role_recorded(self, source_identity: str) -> dict:
        found: list[dict] = []

        def recorded() -> bool:
            found[:] = [
                r
                for r in self.trail()
                if r["eventName"] == "AssumeRole"
                and (r.get("requestParameters") or {}).get("sourceIdentity") == source_identity
            ]
            return bool(found)

        wait_until(recorded, timeout=10, what=f"AssumeRole as {source_identity} in the trail")
        return found[0]


@pytest.fixture
def kits(live, tmp_path) -> Kits:  # noqa: F811
    # Only the kit's profile is watched: the shared sandbox role belongs to nobody's test.
    live.cast.profile.delete()
    return Kits(live=live, root=tmp_path)
