"""Worker figures (issue 4), with Redis, PostgreSQL, a real worker and beat, and the AWS sandbox.

1. time-to-access (second approval committed -> ACTIVE) over 50 requests, against the bare AWS
   calls of an activation (PutUserPolicy + AssumeRole) measured in the same run;
2. time-to-revoke at the deadline for those 50 grants (worker up), against the bare AWS calls
   of a revocation (PutRolePolicy + DeleteUserPolicy);
3. time-to-revoke after the worker was killed past the deadline and restarted;
4. 200 grants expiring in the same minute: the latest revocation after its deadline.

Every approval is signed by an approver of its own, with the first code of a fresh TOTP device:
no approval can race a time step or the replay protection, so the run is deterministic.

    python bench/bench_worker.py        (about 5 minutes)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import percentile, running_sandbox, throwaway_postgres  # noqa: E402

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
SWEEP_SECONDS = 10
PER_PRINCIPAL = 5  # an IAM user holds ~6 grant policies (2,048 characters of inline policy)
GRANTS = 50 + 200 + 10  # phases 1, 3 and 4


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, state, var_dir: Path) -> None:
        self.state = state
        self.var_dir = var_dir
        self.principals: dict[str, dict] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.approvers: list = []  # each signs exactly one approval (see open_and_approve)

    # -- set-up ---------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": throwaway_postgres("bench_worker"),
            "CELERY_BROKER_URL": BROKER_URL,
            "BREAKGLASS_CELERY_QUEUE": "bench-worker",
            "BREAKGLASS_VAR_DIR": str(self.var_dir),
            "BREAKGLASS_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
            "BREAKGLASS_AWS_ENDPOINT_URL": self.state.endpoint_url,
            "BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE": str(self.state.state_dir / "broker.json"),
            "BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE": str(self.var_dir / "principals.json"),
            "BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS": "0",
            "BREAKGLASS_LOG_LEVEL": "WARNING",
        }

    def profiles(self, count: int, group) -> list:
        from approvals.models import AccessProfile
        from tests.sandbox_plugin import AwsSandbox

        sandbox = AwsSandbox(process=None, state=self.state)
        created = []
        for _ in range(count):
            extra = sandbox.new_target()
            self.principals[extra.target.principal_arn] = {
                "access_key_id": extra.principal_keys.access_key_id,
                "secret_access_key": extra.principal_keys.secret_access_key,
            }
            created.append(
                AccessProfile.objects.create(
                    slug=f"bench-{uuid.uuid4().hex[:10]}",
                    name="bench",
                    account_id=extra.target.account_id,
                    region=extra.target.region,
                    role_arn=extra.target.role_arn,
                    principal_arn=extra.target.principal_arn,
                    approver_group=group,
                )
            )
        (self.var_dir / "principals.json").write_text(json.dumps(self.principals))
        return created

    def start(self, name: str, args: list[str]) -> None:
        output = (self.var_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", *args],
            cwd=ROOT, env=dict(os.environ), stdout=output, stderr=output, start_new_session=True,
        )  # fmt: skip
        time.sleep(4)  # workers take a few seconds to connect; requests queue in Redis meanwhile

    def start_worker(self) -> None:
        # The grants queue first, as every worker of ours (portal/settings.py).
        queues = "bench-worker-grants,bench-worker"
        self.start("worker", ["worker", "-Q", queues, "--loglevel", "WARNING"])

    def start_beat(self) -> None:
        schedule = str(self.var_dir / "beat-schedule")
        self.start("beat", ["beat", "--loglevel", "WARNING", "--schedule", schedule])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=15)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    # -- the procedure --------------------------------------------------------------------------
    def open_and_approve(self, profile, requester, ticket: str):
        from approvals.services.requests import request_approve, request_open
        from tests.conftest import fresh_code

        access_request = request_open(
            profile_slug=profile.slug, requester=requester, ticket=ticket,
            justification="benchmark", duration_minutes=1,
        )  # fmt: skip
        for _ in range(2):
            # A fresh approver each time: its device's first code is valid and never used, so
            # the approval cannot meet an expiring time step or a replayed code.
            approver = self.approvers.pop()
            request_approve(
                access_request_id=access_request.pk,
                approver=approver,
                otp_code=fresh_code(approver),
            )
        return access_request.pk

    def wait_for(self, ids, status: str, timeout: float) -> list:
        from approvals.models import AccessRequest

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = list(AccessRequest.objects.filter(pk__in=ids))
            if all(r.status == status for r in rows):
                return rows
            time.sleep(0.2)
        stuck = list(AccessRequest.objects.filter(pk__in=ids).exclude(status=status))
        logs = (self.var_dir / "worker.log").read_text(errors="replace")[-2000:]
        raise TimeoutError(
            f"{len(stuck)} requests did not reach {status} within {timeout}s: "
            f"{[(r.status, r.failure_reason) for r in stuck[:3]]}\nworker log:\n{logs}"
        )


def bare_aws_ms(state, target, keys) -> tuple[float, float]:
    """The AWS calls of an activation and of a revocation, bare boto3, same documents."""
    import boto3

    from awsaccess import policies
    from awsaccess.types import Grant

    session = dict(endpoint_url=state.endpoint_url, region_name=target.region)
    iam = boto3.client(
        "iam",
        aws_access_key_id=state.broker.access_key_id,
        aws_secret_access_key=state.broker.secret_access_key,
        **session,
    )
    sts = boto3.client("sts", aws_access_key_id=keys.access_key_id,
                       aws_secret_access_key=keys.secret_access_key, **session)  # fmt: skip
    user = target.principal_arn.rsplit("/", 1)[1]
    role = target.role_arn.rsplit("/", 1)[1]
    activate, revoke = [], []
    for n in range(50):
        request_id = str(uuid.uuid4())
        grant = Grant(request_id, f"BENCH-{n}", {"breakglass-request": request_id},
                      datetime.now(UTC) + timedelta(minutes=30))  # fmt: skip
        started = time.perf_counter()
        iam.put_user_policy(
            UserName=user,
            PolicyName=policies.grant_policy_name(grant),
            PolicyDocument=policies.to_json(policies.grant_policy(target, grant)),
        )
        sts.assume_role(
            RoleArn=target.role_arn,
            RoleSessionName=grant.session_name,
            SourceIdentity=request_id,
            DurationSeconds=900,
            Tags=[{"Key": "breakglass-request", "Value": request_id}],
        )
        activate.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        iam.put_role_policy(
            RoleName=role,
            PolicyName=f"bench-deny-{n}",
            PolicyDocument=policies.to_json(policies.revocation_policy(request_id)),
        )
        iam.delete_user_policy(UserName=user, PolicyName=policies.grant_policy_name(grant))
        revoke.append((time.perf_counter() - started) * 1000)
        iam.delete_role_policy(RoleName=role, PolicyName=f"bench-deny-{n}")  # fmt: skip
    return percentile(activate, 0.5), percentile(revoke, 0.5)


def main() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    with running_sandbox() as state, tempfile.TemporaryDirectory() as tmp:
        bench = Bench(state, Path(tmp))
        os.environ.update(bench.environment())
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from approvals.services.identity import totp_device_set

        call_command("migrate", verbosity=0)
        group = Group.objects.create(name="approvers")
        requester = User.objects.create(username="requester")
        totp_device_set(user=requester)
        for n in range(2 * GRANTS):
            approver = User.objects.create(username=f"approver{n}")
            approver.groups.add(group)
            totp_device_set(user=approver)
            bench.approvers.append(approver)
        profiles = bench.profiles(10 + 40 + 2 + 1, group)
        reference = profiles.pop()
        bench.start_worker()
        bench.start_beat()
        try:
            results = run_phases(bench, profiles, requester)
            keys = bench.principals[reference.principal_arn]
            from awsaccess.types import PrincipalKeys

            bare_access, bare_revoke = bare_aws_ms(
                state, reference.aws_target(), PrincipalKeys(**keys)
            )
        finally:
            bench.stop_all()
    report(results, bare_access, bare_revoke)


def run_phases(bench: Bench, profiles: list, requester) -> dict:
    from django.utils import timezone

    log("phase 1: 50 activations, one after another")
    ids = []
    for n in range(50):
        request_id = bench.open_and_approve(profiles[n // PER_PRINCIPAL], requester, f"INC-{n}")
        bench.wait_for([request_id], "active", timeout=30)
        ids.append(request_id)
    from approvals.models import AccessRequest

    access_ms = [r.time_to_access_ms for r in AccessRequest.objects.filter(pk__in=ids)]

    log("phase 2: the same 50 grants revoked at their deadlines (worker up)")
    revoked = bench.wait_for(ids, "revoked", timeout=120)
    revoke_ms = [(r.revoked_at - r.expires_at).total_seconds() * 1000 for r in revoked]

    log("phase 3: 200 grants expiring in the same minute")
    batch = profiles[10:50]
    many = [
        bench.open_and_approve(batch[n // PER_PRINCIPAL], requester, f"INC-{n}") for n in range(200)
    ]
    bench.wait_for(many, "active", timeout=120)
    burst = bench.wait_for(many, "revoked", timeout=150)
    burst_ms = [(r.revoked_at - r.expires_at).total_seconds() * 1000 for r in burst]
    spread = max(r.expires_at for r in burst) - min(r.expires_at for r in burst)

    log("phase 4: worker killed while 10 grants are active, restarted past the deadline")
    killed = [
        bench.open_and_approve(profiles[50 + n // PER_PRINCIPAL], requester, f"INC-900{n}")
        for n in range(10)
    ]
    rows = bench.wait_for(killed, "active", timeout=60)
    bench.kill("worker")
    latest = max(r.expires_at for r in rows)
    time.sleep(max(0.0, (latest - timezone.now()).total_seconds()) + 5)
    restarted = timezone.now()
    bench.start_worker()
    after = bench.wait_for(killed, "revoked", timeout=60)
    restart_ms = [(r.revoked_at - restarted).total_seconds() * 1000 for r in after]
    return {
        "access": access_ms,
        "revoke": revoke_ms,
        "burst": burst_ms,
        "burst_spread_s": spread.total_seconds(),
        "restart": restart_ms,
    }


def report(results: dict, bare_access: float, bare_revoke: float) -> None:
    access, revoke = results["access"], results["revoke"]
    burst, restart = results["burst"], results["restart"]
    print(
        f"time-to-access  p50 {percentile(access, 0.5):.0f} ms  p95 {percentile(access, 0.95):.0f}"
        f" ms  (bare AWS calls p50 {bare_access:.0f} ms)\n"
        f"time-to-revoke  p50 {percentile(revoke, 0.5):.0f} ms  max {max(revoke):.0f} ms at the "
        f"deadline (bare AWS calls p50 {bare_revoke:.0f} ms)\n"
        f"200 grants (deadlines spread over {results['burst_spread_s']:.0f} s): latest revoked "
        f"{max(burst) / 1000:.1f} s after its deadline, p50 {percentile(burst, 0.5):.0f} ms\n"
        f"worker killed: revoked at most {max(restart) / 1000:.1f} s after restart "
        f"(bound: sweeper period {SWEEP_SECONDS} s + 5 s)"
    )
    figures = [
        ("time-to-access p50", percentile(access, 0.5), bare_access, "< 300 ms"),
        ("time-to-access p95", percentile(access, 0.95), bare_access, "< 1000 ms"),
        ("time-to-revoke at deadline p50", percentile(revoke, 0.5), bare_revoke, "< 1000 ms"),
        ("time-to-revoke at deadline max", max(revoke), bare_revoke, "< 2000 ms"),
        ("200 grants: latest revocation after deadline", max(burst), bare_revoke, "< 10000 ms"),
        ("worker killed: revoked after restart (max)", max(restart), SWEEP_SECONDS * 1000,
         "< 15000 ms"),
    ]  # fmt: skip
    for figure, ours, reference, target in figures:
        print(json.dumps({"figure": figure, "ours_ms": round(ours, 1),
                          "reference_ms": round(reference, 1),
                          "ratio": round(ours / reference, 2), "target": target}))  # fmt: skip


if __name__ == "__main__":
    main()
