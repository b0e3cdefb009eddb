"""pytest plugin: a session-wide AWS sandbox (moto + our extension) on a free loopback port."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from awsaccess import policies
from awsaccess.provisioning import profile_provision
from awsaccess.sandbox.__main__ import wait_until_up
from awsaccess.sandbox.bootstrap import SandboxState, bootstrap
from awsaccess.types import AwsConnection, AwsTarget, PrincipalKeys

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ExtraTarget:
    target: AwsTarget
    principal_keys: PrincipalKeys


@dataclass
class AwsSandbox:
    process: subprocess.Popen
    state: SandboxState
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def endpoint_url(self) -> str:
        return self.state.endpoint_url

    @property
    def account_id(self) -> str:
        return self.state.account_id

    @property
    def region(self) -> str:
        return self.state.region

    @property
    def role_arn(self) -> str:
        return self.state.role_arn

    @property
    def principal_arn(self) -> str:
        return self.state.principal_arn

    @property
    def broker(self) -> AwsConnection:
        return self.state.broker

    @property
    def provisioner(self) -> AwsConnection:
        return self.state.provisioner

    @property
    def principal_keys(self) -> PrincipalKeys:
        return self.state.principal_keys

    @property
    def state_dir(self) -> Path:
        return self.state.state_dir

    def target(self) -> AwsTarget:
        return self.state.target()

    def pause(self) -> None:
        """AWS is down, but moto keeps its in-memory state."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def set_clock_offset(self, seconds: float) -> None:
        request = urllib.request.Request(  # noqa: S310 (loopback sandbox)
            f"{self.endpoint_url}/_sandbox/clock",
            data=json.dumps({"offset_seconds": seconds}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()

    def service_events_put(self, region: str, entries: list[dict]) -> list[dict]:
        """Put events on the default bus as an AWS service emits them ("aws." sources, which
        PutEvents refuses): CloudTrail records of calls the sandbox never served."""
        request = urllib.request.Request(  # noqa: S310 (loopback sandbox)
            f"{self.endpoint_url}/_sandbox/events",
            data=json.dumps(
                {"account": self.account_id, "region": region, "entries": entries}
            ).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())["Entries"]

    def iam_stale_reads(self, role_name: str, reads: int) -> None:
        """IAM's eventual consistency for one role: its next `reads` GetRolePolicy answers do
        not see its inline policies yet (0 switches it off)."""
        request = urllib.request.Request(  # noqa: S310 (loopback sandbox)
            f"{self.endpoint_url}/_sandbox/iam/stale-reads",
            data=json.dumps({"role": role_name, "reads": reads}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200

    def client(self, service: str, connection: AwsConnection | None = None, **kwargs: str):
        connection = connection or self.provisioner
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=kwargs.pop("region_name", self.region),
            aws_access_key_id=kwargs.pop("aws_access_key_id", connection.access_key_id),
            aws_secret_access_key=kwargs.pop("aws_secret_access_key", connection.secret_access_key),
            **kwargs,
        )

    def new_user(self, name: str, policy: dict | None = None) -> PrincipalKeys:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="test", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return PrincipalKeys(key["AccessKeyId"], key["SecretAccessKey"])

    def new_target(self, *, max_session_seconds: int = 3600) -> ExtraTarget:
        """A fresh role and principal (named so the broker's policy covers them), provisioned."""
        n = next(self._names)
        role_name = f"breakglass-test-{os.getpid()}-{n}"
        principal_name = f"breakglass-principal-test-{os.getpid()}-{n}"
        keys = self.new_user(principal_name)
        target = AwsTarget(
            account_id=self.account_id,
            region=self.region,
            role_arn=f"arn:aws:iam::{self.account_id}:role/{role_name}",
            principal_arn=f"arn:aws:iam::{self.account_id}:user/{principal_name}",
            max_session_seconds=max_session_seconds,
        )
        report = profile_provision(self.provisioner, target, check_only=False)
        assert not report.has_drift, report
        self.client("iam").attach_role_policy(
            RoleName=role_name,
            PolicyArn=f"arn:aws:iam::{self.account_id}:policy/breakglass-sandbox-role-permissions",
        )
        self.watch_queue_clear(target)
        return ExtraTarget(target, keys)

    def trail_idle(self, timeout: float = 10.0) -> None:
        """Until the sandbox's trail worker has delivered every call served so far (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            url = f"{self.endpoint_url}/_sandbox/cloudtrail"
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                if not json.loads(response.read())["pending"]:
                    return
            time.sleep(0.05)
        raise TimeoutError("the sandbox's trail worker did not catch up")

    def watch_queue_clear(self, target: AwsTarget) -> None:
        """Drop what provisioning itself put on a new watch queue (its own changes to the
        machinery are tampering alarms on a real account, acknowledged once)."""
        self.trail_idle()
        sqs = self.client("sqs", region_name=target.region)
        url = sqs.get_queue_url(QueueName=policies.watch_name(target.role_name))["QueueUrl"]
        for _ in range(100):  # deleting messages is not a change to the queue (a purge is)
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
            if not messages:
                return
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)  # a paused process ignores SIGTERM until resumed
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def aws_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsSandbox]:
    port = free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("sandbox-log") / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "awsaccess.sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(endpoint_url, timeout=START_TIMEOUT)
        state, _ = bootstrap(endpoint_url, tmp_path_factory.mktemp("sandbox-state"))
        yield AwsSandbox(process=process, state=state)
    finally:
        _stop(process)
        log.close()
