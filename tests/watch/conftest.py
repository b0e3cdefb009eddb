"""A sandbox-backed profile whose watch queue tests feed with real-shaped CloudTrail events."""

import json
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from approvals.models import AccessProfile
from approvals.services.watch import PollReport, watch_poll
from awsaccess import policies
from tests.administration import administration_alarms_cleared
from tests.aws_profile import SandboxProfile, sandbox_profile
from tests.processes import wait_until
from tests.worker.conftest import live  # noqa: F401

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cloudtrail"


def cloudtrail_event(name: str, **overrides) -> dict:
    """A fixture CloudTrail record with a fresh eventID and time, plus any field overrides
    (dotted keys reach into nested objects: "requestParameters.roleArn")."""
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    record["eventID"] = str(uuid.uuid4())
    record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = record
        for parent in parents:
            node = node[parent]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return record


def event_by(profile: AccessProfile, name: str = "assume_role_by_principal", **overrides) -> dict:
    """An AssumeRole of the profile's role by its principal (until overridden)."""
    values = {
        "requestParameters.roleArn": profile.role_arn,
        "userIdentity.arn": profile.principal_arn,
        "awsRegion": profile.region,
        "requestParameters.sourceIdentity": None,
        "requestParameters.roleSessionName": "manual",
    }
    values.update(overrides)
    return cloudtrail_event(name, **values)


def event_for(access_request, name: str = "assume_role_by_principal", **overrides) -> dict:
    """What CloudTrail records when the portal's worker assumes the role for this request."""
    return event_by(
        access_request.profile,
        name,
        **{
            "requestParameters.sourceIdentity": str(access_request.pk),
            "requestParameters.roleSessionName": f"{access_request.ticket}-{access_request.pk}",
            **overrides,
        },
    )


@dataclass
class Watched:
    aws: SandboxProfile
    cast: object

    @property
    def profile(self) -> AccessProfile:
        return self.aws.profile

    def put_events(self, *records: dict) -> None:
        """Deliver records as EventBridge does for CloudTrail: source aws.sts, detail = record
        (through the sandbox's service door: PutEvents refuses "aws." sources, as AWS does)."""
        entries = [
            {
                "Source": "aws.sts",
                "DetailType": "AWS API Call via CloudTrail",
                "Detail": json.dumps(record),
                "Resources": [],
            }
            for record in records
        ]
        for start in range(0, len(entries), 10):
            answer = self.aws.sandbox.service_events_put(
                self.profile.region, entries[start : start + 10]
            )
            assert not [entry for entry in answer if "ErrorCode" in entry], answer

    def send_raw(self, body: str) -> None:
        """A message that did not come through the rule (as only a tamperer could send)."""
        sqs = self.aws.sandbox.client("sqs", region_name=self.profile.region)
        url = sqs.get_queue_url(QueueName=f"breakglass-watch-{self.profile.aws_target().role_name}")
        sqs.send_message(QueueUrl=url["QueueUrl"], MessageBody=body)

    def sandbox_records(self, limit: int = 2000) -> list[dict]:
        """The sandbox's newest CloudTrail records (what it delivered or dropped), oldest first."""
        url = f"{self.aws.sandbox.endpoint_url}/_sandbox/cloudtrail/events?limit={limit}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())["records"]

    def real_assume_role(self, access_request) -> dict:
        """The CloudTrail record of the worker's own AssumeRole for this request (bounded wait)."""
        found: list[dict] = []

        def recorded() -> bool:
            found[:] = [
                record
                for record in self.sandbox_records()
                if record["eventName"] == "AssumeRole"
                and (record.get("requestParameters") or {}).get("sourceIdentity")
                == str(access_request.pk)
            ]
            return bool(found)

        wait_until(recorded, timeout=10, what="the worker's AssumeRole in the sandbox's trail")
        [record] = found
        return record

    def poll_until(self, predicate, *, timeout: float = 15) -> list[PollReport]:
        """Run the watcher's poll (1 s long polls) until `predicate()` holds; bounded."""
        reports: list[PollReport] = []

        def done():
            reports.append(watch_poll(wait_seconds=1))
            return predicate()

        wait_until(done, timeout=timeout, interval=0, what="watched outcome")
        return reports


@pytest.fixture
def watched(cast, aws_sandbox, settings, tmp_path) -> Watched:
    aws = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path,
        approver_group=cast.profile.approver_group,
    )
    # Only the fresh profile is watched: the shared sandbox role belongs to nobody's test.
    cast.profile.delete()
    administration_alarms_cleared()
    return Watched(aws=aws, cast=cast)


@pytest.fixture
def scene(watched) -> dict:
    """The watched profile's machinery, reached with the provisioner's (an administrator's) keys:
    what a tamperer with IAM rights would change."""
    sandbox, profile = watched.aws.sandbox, watched.profile
    target = profile.aws_target()
    sqs = sandbox.client("sqs", region_name=profile.region)
    watch = policies.watch_name(target.role_name)
    queue_url = sqs.get_queue_url(QueueName=watch)["QueueUrl"]
    return {
        "iam": sandbox.client("iam", region_name="us-east-1"),
        "events": sandbox.client("events", region_name=profile.region),
        "cloudtrail": sandbox.client("cloudtrail", region_name=profile.region),
        "sqs": sqs,
        "queue_url": queue_url,
        "queue_arn": sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"],
        "role": target.role_name,
        "principal": target.principal_arn.rsplit("/", 1)[-1],
        "watch": watch,
        "target": target,
        "sandbox": sandbox,
    }


@dataclass
class ChatReceiver:
    """A loopback HTTP server standing in for a Slack incoming webhook."""

    fail_first: int = 0
    status_when_failing: int = 500
    received: list[dict] = field(default_factory=list)
    attempts: int = 0
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/secret"

    def start(self) -> "ChatReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(receiver.status_when_failing)
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def chat_receiver():
    receivers: list[ChatReceiver] = []

    def start(**kwargs) -> ChatReceiver:
        receiver = ChatReceiver(**kwargs).start()
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.stop()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        self.messages.append((tuple(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback; Django's SMTP backend is pointed at it."""
    from aiosmtpd.controller import Controller

    from tests.sandbox_plugin import free_port

    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield mailbox
    finally:
        controller.stop()
