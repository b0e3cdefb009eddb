"""Benchmark: from EventBridge put_events to the stored ObservedUse + alarm, with the default poll
settings (beat every BREAKGLASS_WATCH_INTERVAL_SECONDS, long polls of WATCH_WAIT_SECONDS).

Starts its own sandbox and a throw-away SQLite database. The real poll task runs in-process on a
beat-like schedule (a tick that finds the previous poll still running is skipped, as `expires`
does for a real worker). Reference: a second queue on the same rule, long-polled continuously by
bare boto3: the floor that EventBridge + SQS delivery alone costs, for the same events.
Usage: python bench/bench_watch.py [N]
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from awsaccess import policies  # noqa: E402
from awsaccess.sandbox.__main__ import wait_until_up  # noqa: E402
from awsaccess.sandbox.bootstrap import bootstrap  # noqa: E402
from tests.sandbox_plugin import free_port  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "cloudtrail" / "assume_role_by_principal.json"
REFERENCE_TARGET_ID = "bench-reference"


def service_event_put(state, entry: dict) -> None:
    """As CloudTrail puts it on the bus: PutEvents refuses "aws." sources, as AWS does."""
    body = {"account": state.account_id, "region": state.region, "entries": [entry]}
    request = urllib.request.Request(  # noqa: S310 (loopback sandbox)
        f"{state.endpoint_url}/_sandbox/events",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(count: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (work / "sandbox.log").open("wb")
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "awsaccess.sandbox", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until_up(endpoint, timeout=30)
        state, _ = bootstrap(endpoint, work / "state")
        run(state, work, count)
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill()
            sandbox.wait(timeout=10)
        log.close()


def run(state, work: Path, count: int) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "BREAKGLASS_VAR_DIR": str(work / "var"),
            "DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
            "BREAKGLASS_AWS_ENDPOINT_URL": state.endpoint_url,
            "BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE": str(state.state_dir / "broker.json"),
            "BREAKGLASS_LOG_LEVEL": "CRITICAL",
        }
    )
    import boto3
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from approvals.models import AccessProfile, ObservedUse
    from approvals.tasks import watch_poll

    call_command("migrate", verbosity=0)
    call_command("createcachetable")  # the poll lock lives in the shared cache
    profile = AccessProfile.objects.create(
        slug="bench",
        name="Bench",
        account_id=state.account_id,
        region=state.region,
        role_arn=state.role_arn,
        principal_arn=state.principal_arn,
        approver_group=Group.objects.create(name="approvers"),
    )
    admin = {
        "endpoint_url": state.endpoint_url,
        "region_name": state.region,
        "aws_access_key_id": state.provisioner.access_key_id,
        "aws_secret_access_key": state.provisioner.secret_access_key,
    }
    events, sqs = boto3.client("events", **admin), boto3.client("sqs", **admin)
    reference_url = sqs.create_queue(QueueName="bench-reference")["QueueUrl"]
    reference_arn = sqs.get_queue_attributes(QueueUrl=reference_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = policies.watch_name(profile.aws_target().role_name)
    events.put_targets(Rule=rule, Targets=[{"Id": REFERENCE_TARGET_ID, "Arn": reference_arn}])
    # EventBridge sends only to a queue whose policy lets the rule (the sandbox asks, as AWS does):
    # without it every reference delivery is refused and the reference sees nothing.
    sqs.set_queue_attributes(
        QueueUrl=reference_url,
        Attributes={
            "Policy": json.dumps(
                policies.watch_queue_policy(reference_arn, events.describe_rule(Name=rule)["Arn"])
            )
        },
    )

    sent: dict[str, float] = {}
    reference_seen: dict[str, float] = {}
    stop = threading.Event()

    def reference_reader() -> None:
        while not stop.is_set():
            response = sqs.receive_message(
                QueueUrl=reference_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            now = time.time()
            for message in response.get("Messages", []):
                reference_seen[json.loads(message["Body"])["detail"]["eventID"]] = now
                sqs.delete_message(QueueUrl=reference_url, ReceiptHandle=message["ReceiptHandle"])

    def beat() -> None:
        from django.db import connection

        interval = settings.WATCH_INTERVAL_SECONDS
        next_tick = time.monotonic()
        while not stop.is_set():
            watch_poll.apply()
            next_tick += interval
            while next_tick < time.monotonic():
                next_tick += interval  # a tick that would have expired in the queue
            stop.wait(max(0.0, next_tick - time.monotonic()))
        connection.close()

    threads = [threading.Thread(target=reference_reader), threading.Thread(target=beat)]
    for thread in threads:
        thread.start()
    template = json.loads(FIXTURE.read_text())
    template["requestParameters"]["roleArn"] = profile.role_arn
    template["userIdentity"]["arn"] = profile.principal_arn
    rng = random.Random(7)
    try:
        for _ in range(count):
            record = dict(template, eventID=str(uuid.uuid4()))
            record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            entry = {
                "Source": "aws.sts",
                "DetailType": "AWS API Call via CloudTrail",
                "Detail": json.dumps(record),
            }
            sent[record["eventID"]] = time.time()
            service_event_put(state, entry)
            # Spread the events over the poll cycle's phases.
            time.sleep(rng.uniform(0.05, 0.45))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ObservedUse.objects.count() >= count and len(reference_seen) >= count:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    stored = dict(ObservedUse.objects.values_list("event_id", "received_at"))
    ours = [(stored[e].timestamp() - t) * 1000 for e, t in sent.items() if e in stored]
    bare = [(reference_seen[e] - t) * 1000 for e, t in sent.items() if e in reference_seen]
    alarms = ObservedUse.objects.filter(explained=False).count()
    ours_p50, ours_p95 = statistics.median(ours), percentile(ours, 0.95)
    bare_p50, bare_p95 = statistics.median(bare), percentile(bare, 0.95)
    print(f"events        {count} sent, {len(ours)} stored ({alarms} alarms), {len(bare)} bare")
    print(
        f"poll settings interval {settings.WATCH_INTERVAL_SECONDS} s, "
        f"wait {settings.WATCH_WAIT_SECONDS} s"
    )
    print(f"ours          p50 {ours_p50:.0f} ms  p95 {ours_p95:.0f} ms  max {max(ours):.0f} ms")
    print(f"bare receive  p50 {bare_p50:.0f} ms  p95 {bare_p95:.0f} ms  max {max(bare):.0f} ms")
    print(
        json.dumps(
            {
                "figure": "put_events -> stored ObservedUse/alarm/timeline, p95 over "
                f"{count} events (default poll settings)",
                "ours_ms": round(ours_p95, 1),
                "reference_ms": round(bare_p95, 1),
                "ratio": round(ours_p95 / bare_p95, 2) if bare_p95 else None,
                "ours_p50_ms": round(ours_p50, 1),
                "reference_p50_ms": round(bare_p50, 1),
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
