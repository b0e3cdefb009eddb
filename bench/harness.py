"""A portal with a real worker and beat against the sandbox, for the access and activity benches:
the environment, the processes (stopped by PID), fresh approvers (one approval each, so no TOTP
race), a provisioned profile, and the busy work (notices, webhooks, session calls)."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def logs_kept(var_dir: Path) -> Path:
    """Copy every process log under `var_dir` (a temporary folder about to go) to a folder that
    stays, and say where: a benchmark that fails once in several runs is only explained by them."""
    import shutil
    import tempfile

    kept = Path(tempfile.mkdtemp(prefix="breakglass-bench-logs-"))
    for log_file in var_dir.rglob("*.log"):
        target = kept / log_file.relative_to(var_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log_file, target)
    log(f"the processes' logs are kept in {kept}")
    return kept


def portal_env(state, var_dir: Path, *, database_url: str, broker_url: str | None, queue: str):
    """What the portal's processes get: the sandbox, the database and the broker (None: the
    embedded filesystem broker under var_dir, as `make run`)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "BREAKGLASS_CELERY_QUEUE": queue,
        "BREAKGLASS_VAR_DIR": str(var_dir),
        "BREAKGLASS_AWS_ENDPOINT_URL": state.endpoint_url,
        "BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE": str(state.state_dir / "broker.json"),
        "BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE": str(var_dir / "principals.json"),
        "BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS": "0",
        "BREAKGLASS_WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
        "BREAKGLASS_ACTIVITY_BACKSTOP_SETTLE_SECONDS": "5",
        "BREAKGLASS_LOG_LEVEL": "WARNING",
    }
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    return env


class Processes:
    def __init__(self, env: dict[str, str], var_dir: Path) -> None:
        self.env = env
        self.var_dir = var_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> None:
        output = (self.var_dir / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", *args],
            cwd=ROOT, env={**os.environ, **self.env}, stdout=output, stderr=output,
            start_new_session=True,
        )  # fmt: skip

    def worker(self, timeout: float = 60) -> None:
        """Start the workers as `make run` does, and return once both are ready: the main one
        has run a task (a heartbeat of its own), the grants worker has logged that it is."""
        from celery import current_app

        from approvals.models import Component, Heartbeat
        from approvals.services.queue import Job

        since = time.time()
        # No -Q: the worker consumes settings.CELERY_TASK_QUEUES, grants first, as `make run`'s.
        self.start("worker", ["worker", "--loglevel", "WARNING"])
        # INFO for its "ready." line only: it logs two lines a grant besides.
        self.start("grants-worker", ["worker", "--grants-only", "--concurrency", "2",
                                     "--hostname", f"grants-{time.monotonic_ns()}@%h",
                                     "--loglevel", "INFO"])  # fmt: skip
        grants_log = self.var_dir / "grants-worker.log"
        deadline = time.monotonic() + timeout
        try:
            current_app.send_task(Job.WORKER_HEARTBEAT.value)
            while time.monotonic() < deadline:
                seen = Heartbeat.objects.filter(component=Component.WORKER).first()
                if (
                    seen is not None
                    and seen.seen_at.timestamp() >= since
                    and " ready." in grants_log.read_text(errors="replace")
                ):
                    return
                time.sleep(0.05)
            raise TimeoutError(f"the workers were not ready within {timeout}s (see {self.var_dir})")
        except BaseException:
            # Nothing outlives a failed start: a stray worker would take the next run's tasks.
            self.stop_all()
            raise

    def stop_workers(self, *, kill: bool = False) -> None:
        for name in ("worker", "grants-worker"):
            self.stop(name, kill=kill)

    def beat(self) -> None:
        # Its first messages are sent once it has started; nothing waits for them.
        self.start("beat", ["beat", "--loglevel", "WARNING", "--schedule",
                            str(self.var_dir / f"beat-{time.monotonic_ns()}")])  # fmt: skip

    def stop(self, name: str, *, kill: bool = False) -> None:
        """Stop `name` (warm shutdown), or with `kill` SIGKILL it as a crash would."""
        process = self.running.pop(name)
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def _receiver_serve(delay: float, count, port) -> None:
    """The Receiver's process: answer each POST after `delay` s, counting them."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            with count.get_lock():
                count.value += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port.value = server.server_address[1]
    server.serve_forever()


class Receiver:
    """A loopback HTTP endpoint for chat notices and webhooks, answering after `delay` s.

    In a process of its own, as a chat service or a webhook consumer is: its threads in the
    benchmark's process would take the interpreter from the approvals being measured."""

    def __init__(self, delay: float = 0.02, timeout: float = 30) -> None:
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("i", 0)
        self._port = context.Value("i", 0)
        self.process = context.Process(
            target=_receiver_serve, args=(delay, self._count, self._port), daemon=True
        )
        self.process.start()
        deadline = time.monotonic() + timeout
        while not self._port.value:
            if time.monotonic() > deadline or not self.process.is_alive():
                self.stop()
                raise TimeoutError(f"the receiver did not listen within {timeout}s")
            time.sleep(0.05)

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port.value}/hook"

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)


class Cast:
    """The people: a requester and fresh approvers, each signing one approval only."""

    def __init__(self, approvals: int) -> None:
        from django.contrib.auth.models import Group, User

        from approvals.services.identity import totp_device_set

        self.group, _ = Group.objects.get_or_create(name="approvers")
        self.requester = User.objects.create(username=f"requester-{uuid.uuid4().hex[:6]}")
        totp_device_set(user=self.requester)
        self.approved_sent: dict = {}
        self.approvers = []
        for _ in range(approvals):
            approver = User.objects.create(username=f"approver-{uuid.uuid4().hex[:10]}")
            approver.groups.add(self.group)
            totp_device_set(user=approver)
            self.approvers.append(approver)

    def open_and_approve(self, profile, ticket: str, minutes: int = 30):
        from approvals.services.requests import request_approve, request_open
        from tests.conftest import fresh_code

        access_request = request_open(
            profile_slug=profile.slug, requester=self.requester, ticket=ticket,
            justification="benchmark", duration_minutes=minutes,
        )  # fmt: skip
        for _ in range(profile.required_approvals):
            approver = self.approvers.pop()  # its device's first code: valid, never used
            request_approve(
                access_request_id=access_request.pk,
                approver=approver,
                otp_code=fresh_code(approver),
            )
        # The last approval is committed and its messages sent (on commit) by now.
        self.approved_sent[access_request.pk] = datetime.now(UTC)
        return access_request.pk

    def credentials(self, request_id):
        from approvals.services.requests import credentials_reveal
        from tests.conftest import fresh_code

        return credentials_reveal(
            access_request_id=request_id, user=self.requester, otp_code=fresh_code(self.requester)
        )


_sandboxes: dict = {}


def _new_target(state) -> tuple:
    """A fresh role and principal, provisioned (watch queue and rules) -> (target, keys)."""
    from tests.sandbox_plugin import AwsSandbox

    # One AwsSandbox per process and sandbox: it numbers the roles and principals it makes (and
    # names them after the process).
    sandbox = _sandboxes.setdefault(state.endpoint_url, AwsSandbox(process=None, state=state))  # type: ignore[arg-type]
    extra = sandbox.new_target()
    return extra.target, extra.principal_keys


NOTICE_EMAILS = "oncall@example.com, security@example.com"
# An IAM user holds about six grant policies (2,048 characters of inline policy): a profile's
# principal takes at most this many live grants in a bench.
GRANTS_PER_PROFILE = 5
# Provisioning a profile takes most of a second, mostly in building boto3 clients: in parallel.
PROVISIONING_PROCESSES = 3


def sandbox_profiles(
    state, var_dir: Path, group, grants: int, *, notices_to: str = "", emails=NOTICE_EMAILS
) -> list:
    """Enough access profiles for `grants` live grants (GRANTS_PER_PROFILE each), each on a
    fresh role and principal, whose notices go to `emails` and `notices_to` (a chat webhook)."""
    from approvals.models import AccessProfile

    count = -(-grants // GRANTS_PER_PROFILE)
    if count < 2:
        made = [_new_target(state) for _ in range(count)]
    else:
        # Spawned, not forked: a forked child would share this process's database connection.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(count, PROVISIONING_PROCESSES), mp_context=spawn) as pool:
            made = list(pool.map(_new_target, [state] * count))
    principals = var_dir / "principals.json"
    known = json.loads(principals.read_text()) if principals.exists() else {}
    for target, keys in made:
        known[target.principal_arn] = {
            "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key,
        }
    principals.write_text(json.dumps(known))
    return [
        AccessProfile.objects.create(
            slug=f"bench-{uuid.uuid4().hex[:10]}",
            name="bench",
            account_id=target.account_id,
            region=target.region,
            role_arn=target.role_arn,
            principal_arn=target.principal_arn,
            approver_group=group,
            notify_emails=emails,
            chat_webhook_url=notices_to,
        )
        for target, _ in made
    ]


def sandbox_profile(state, var_dir: Path, group, **notices):
    """One access profile on a fresh role and principal (see sandbox_profiles)."""
    return sandbox_profiles(state, var_dir, group, 1, **notices)[0]


class BareCalls:
    """An activation's and a revocation's AWS calls, bare boto3 with the portal's documents, on
    `profile`'s principal and role: the reference the portal's figures are measured against."""

    def __init__(self, state, profile, var_dir: Path) -> None:
        import boto3

        self.target = profile.aws_target()
        keys = json.loads((var_dir / "principals.json").read_text())[self.target.principal_arn]
        session = dict(endpoint_url=state.endpoint_url, region_name=self.target.region)
        self.iam = boto3.client(
            "iam", aws_access_key_id=state.broker.access_key_id,
            aws_secret_access_key=state.broker.secret_access_key, **session,
        )  # fmt: skip
        self.sts = boto3.client(
            "sts", aws_access_key_id=keys["access_key_id"],
            aws_secret_access_key=keys["secret_access_key"], **session,
        )  # fmt: skip
        self.user = self.target.principal_arn.rsplit("/", 1)[1]
        self.role = self.target.role_arn.rsplit("/", 1)[1]

    def timed(self, n: int) -> tuple[float, float]:
        """One grant: PutUserPolicy + AssumeRole, then PutRolePolicy (the deny) +
        DeleteUserPolicy -> (activation ms, revocation ms); the deny is removed untimed."""
        from awsaccess import policies
        from awsaccess.types import Grant

        request_id = str(uuid.uuid4())
        grant = Grant(request_id, f"BENCH-{n}", {"breakglass-request": request_id},
                      datetime.now(UTC) + timedelta(minutes=30))  # fmt: skip
        name = policies.grant_policy_name(grant)
        allow = policies.to_json(policies.grant_policy(self.target, grant))
        deny = policies.to_json(policies.revocation_policy(request_id))
        started = time.perf_counter()
        self.iam.put_user_policy(UserName=self.user, PolicyName=name, PolicyDocument=allow)
        self.sts.assume_role(
            RoleArn=self.target.role_arn, RoleSessionName=grant.session_name,
            SourceIdentity=request_id, DurationSeconds=900,
            Tags=[{"Key": "breakglass-request", "Value": request_id}],
        )  # fmt: skip
        activation = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        self.iam.put_role_policy(RoleName=self.role, PolicyName=f"bench-deny-{n}",
                                 PolicyDocument=deny)  # fmt: skip
        self.iam.delete_user_policy(UserName=self.user, PolicyName=name)
        revocation = (time.perf_counter() - started) * 1000
        self.iam.delete_role_policy(RoleName=self.role, PolicyName=f"bench-deny-{n}")
        return activation, revocation


def wait_status(request_ids, status: str, timeout: float = 60, poll: float = 0.02) -> list:
    """The requests, once every one of them has `status` (TimeoutError after `timeout` s)."""
    from approvals.models import AccessRequest

    ids = list(request_ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(AccessRequest.objects.filter(pk__in=ids))
        if rows and all(row.status == status for row in rows):
            return rows
        time.sleep(poll)
    stuck = AccessRequest.objects.filter(pk__in=ids).exclude(status=status)
    raise TimeoutError(
        f"not {status} within {timeout}s: {[(r.pk, r.status, r.failure_reason) for r in stuck]}"
    )


def wait_active(request_ids, timeout: float = 60) -> list:
    return wait_status(request_ids, "active", timeout)
