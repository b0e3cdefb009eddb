"""The whole story over HTTP only, against a live server, a real worker and beat, and the sandbox.

Only the setup (keys, tokens, the authenticator app's codes) happens outside HTTP.
"""

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from approvals.models import IntegrationKey
from approvals.services.api_access import integration_key_create, personal_token_create
from approvals.services.webhooks import webhook_endpoint_create
from tests.api.chain import verify_timeline
from tests.api.receiver import Receiver
from tests.api.test_webhooks import verify
from tests.conftest import fresh_code
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Http:
    def __init__(self, base_url: str, secret: str | None = None) -> None:
        self.base_url, self.secret = base_url, secret

    def __call__(self, method: str, path: str, body: dict | None = None):
        headers = {"Content-Type": "application/json", "User-Agent": "e2e-incident-bot/1"}
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        request = urllib.request.Request(  # noqa: S310 (loopback live server)
            self.base_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


def test_an_incident_tool_opens_two_approvers_sign_the_requester_uses_and_revokes(
    live, live_server
):
    cast = live.cast
    live.env.update(
        {"BREAKGLASS_WORKER_HEARTBEAT_SECONDS": "1", "BREAKGLASS_WEBHOOK_BACKOFF_SECONDS": "1"}
    )
    # Only the opening notice fails once: alarms and checkpoints reach every endpoint too, and
    # one arriving first would take the failure meant to prove the retry.
    receiver = Receiver(fail_first=1, fail_event="approvals.request.opened").start()
    _, key = integration_key_create(name="incident-bot")
    _, webhook_secret = webhook_endpoint_create(
        url=receiver.url, integration=IntegrationKey.objects.get(name="incident-bot")
    )
    bot = Http(live_server.url, key)
    rita, alice, bob = (
        Http(live_server.url, personal_token_create(user=user))
        for user in (cast.requester, cast.alice, cast.bob)
    )
    live.start_worker()
    live.start_beat()
    try:
        status, _, opened = bot(
            "POST",
            "/api/v1/requests/",
            {
                "profile": live.aws.profile.slug,
                "ticket": "INC-9001",
                "justification": "Checkout is down; need admin to roll back the deploy.",
                "duration_minutes": 15,
                "requester": "rita",
            },
        )
        assert status == 201, opened
        path = f"/api/v1/requests/{opened['id']}/"

        for approver, user in ((alice, cast.alice), (bob, cast.bob)):
            status, _, signed = approver("POST", path + "approve/", {"otp": fresh_code(user)})
            assert status == 200, signed

        def active():
            return rita("GET", path)[2]["status"] == "active"

        wait_until(active, timeout=40, interval=0.3, what="request active")

        status, headers, credentials = rita(
            "POST", path + "credentials/", {"otp": fresh_code(cast.requester)}
        )
        assert status == 200, credentials
        assert headers["Cache-Control"] == "no-store"
        s3 = boto3.client(
            "s3",
            endpoint_url=credentials["endpoint_url"],
            region_name=credentials["region"],
            aws_access_key_id=credentials["access_key_id"],
            aws_secret_access_key=credentials["secret_access_key"],
            aws_session_token=credentials["session_token"],
            config=Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
        )
        assert "Buckets" in s3.list_buckets()

        status, _, revoking = rita(
            "POST", path + "revoke/", {"otp": fresh_code(cast.requester), "reason": "fixed"}
        )
        assert status == 200, revoking
        wait_until(lambda: rita("GET", path)[2]["status"] == "revoked", timeout=40, what="revoked")
        with pytest.raises(ClientError):
            s3.list_buckets()

        status, _, detail = bot("GET", path)
        assert detail["time_to_access_ms"] is not None
        assert detail["time_to_revoke_ms"] is not None

        status, _, timeline = bot("GET", path + "timeline/")
        assert status == 200
        assert verify_timeline(timeline) == len(timeline["events"])
        codes = [event["code"] for event in timeline["events"]]
        for expected in (
            "approvals.request.opened",
            "approvals.request.approved",
            "approvals.request.active",
            "approvals.credentials.viewed",
            "approvals.revocation.requested",
            "approvals.request.revoked",
        ):
            assert expected in codes
        assert credentials["secret_access_key"] not in json.dumps(timeline)

        health = wait_until(
            lambda: (h := Http(live_server.url)("GET", "/healthz"))[0] == 200 and h,
            timeout=20,
            what="healthz 200",
        )
        assert {c["name"] for c in health[2]["components"]} == {
            "database",
            "broker",
            "worker",
            "sweeper",
            "watcher",
        }

        def webhooks_in():
            delivered = [verify(webhook_secret, r.headers, r.body) for r in receiver.received]
            events = [p["event"] for p in delivered]
            return "approvals.request.revoked" in events and events

        events = wait_until(webhooks_in, timeout=30, what="webhooks delivered")
    finally:
        receiver.stop()
    assert events.count("approvals.request.opened") >= 2  # one 500, then its retry
    assert {
        "approvals.request.approved",
        "approvals.request.active",
        "approvals.revocation.requested",
    } <= set(events)
    bodies = b"".join(r.body for r in receiver.received).decode()
    assert credentials["secret_access_key"] not in bodies
    assert credentials["session_token"] not in bodies
