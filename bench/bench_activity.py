"""Activity figures (issue 13), with PostgreSQL, Redis, a real worker and beat (default poll
settings) and the sandbox's own CloudTrail (no injected events):

1. a break-glass session makes 2,000 calls in 20 s; the delay from each call to its activity row
   (p50, p95), and time-to-access of requests approved during the burst;
2. throughput: 2,000 calls wait in the watch queue (beat stopped), then the watcher's own poll
   records them, against bare boto3 receiving and deleting the same 2,000 events from a second
   queue on an identical rule, in the same run.

Each call names its own queue (sqs:GetQueueUrl), so its row is matched to the moment it was made.

    python bench/bench_activity.py      (about a minute; other sizes: BENCH_ACTIVITY_CALLS=300)
"""

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    GRANTS_PER_PROFILE,
    BareCalls,
    Cast,
    Processes,
    log,
    portal_env,
    sandbox_profile,
    sandbox_profiles,
    wait_active,
)
from bench.support import percentile, running_sandbox, throwaway_postgres  # noqa: E402

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
# The burst: 2,000 calls in 20 s (100 a second); BENCH_ACTIVITY_CALLS for another size.
CALLS = int(os.environ.get("BENCH_ACTIVITY_CALLS", "2000"))
SECONDS, THREADS = CALLS / 100, 8
QUEUED = CALLS  # phase 2: what waits in the queue before the watcher drains it
WAIT = 60  # the longest any phase waits before reporting what it has
GRANTS_DURING_BURST = 10


def session_client(state, region: str, credentials):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs", endpoint_url=state.endpoint_url, region_name=region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(retries={"max_attempts": 1}, max_pool_connections=THREADS),
    )  # fmt: skip


def burst(sqs, prefix: str, seconds: float, count: int = CALLS) -> dict[str, float]:
    """`count` calls spread over `seconds` (0: as fast as they go) → {queue name: time sent}."""
    from botocore.exceptions import ClientError

    sent: dict[str, float] = {}
    started = time.time()

    def call(n: int) -> None:
        if seconds:
            time.sleep(max(0.0, started + n * seconds / count - time.time()))
        name = f"{prefix}-{n:05d}"
        sent[name] = time.time()
        # No such queue (or refused): the call is on the record all the same.
        with contextlib.suppress(ClientError):
            sqs.get_queue_url(QueueName=name)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(call, range(count)))
    return sent


def rows_named(prefix: str) -> dict[str, float]:
    """The activity rows of the calls named `prefix-…` → {queue name: received_at}."""
    from approvals.models import SessionActivity

    found = {}
    for parameters, received in SessionActivity.objects.filter(
        action="GetQueueUrl", request_parameters__queueName__startswith=prefix
    ).values_list("request_parameters", "received_at"):
        found[parameters["queueName"]] = received.timestamp()
    return found


def wait_rows(prefix: str, count: int, timeout: float, progress=None) -> dict[str, float]:
    """The rows of the calls named `prefix-…`, once `count` are recorded or `timeout` passed
    (then what there is: the report counts the missing ones)."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    while time.monotonic() < deadline:
        found = rows_named(prefix)
        if len(found) >= count:
            return found
        if progress and time.monotonic() - shown > 10:
            shown = time.monotonic()
            log(f"{len(found)} recorded; {progress()}")
        time.sleep(0.25)
    return rows_named(prefix)


def reference_queue(state, profile):
    """A second queue behind a rule with the activity rule's pattern (a bare consumer's view)."""
    from awsaccess import policies
    from tests.awsaccess.sandbox.trail import watch
    from tests.sandbox_plugin import AwsSandbox

    sandbox = AwsSandbox(process=None, state=state)  # type: ignore[arg-type]
    return watch(sandbox, policies.activity_event_pattern(profile.aws_target()))


def purge(state, profile, reference_url: str) -> None:
    """Empty the watch queue and the reference queue (an administrator's keys)."""
    from awsaccess import policies
    from tests.sandbox_plugin import AwsSandbox

    sqs = AwsSandbox(process=None, state=state).client("sqs")  # type: ignore[arg-type]
    name = policies.watch_name(profile.aws_target().role_name)
    for url in (sqs.get_queue_url(QueueName=name)["QueueUrl"], reference_url):
        sqs.purge_queue(QueueUrl=url)


def bare_drain(sqs, url: str, count: int) -> float:
    """Receive and delete `count` messages with bare boto3 → events per second."""
    started, got = time.perf_counter(), 0
    while got < count and time.perf_counter() - started < WAIT:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            got += len(messages)
    return got / (time.perf_counter() - started)


def backlog(state, profile) -> str:
    """Where the calls are: still in the sandbox's trail, or waiting in the watch queue."""
    import urllib.request

    from awsaccess import runtime, watch_queue

    with urllib.request.urlopen(f"{state.endpoint_url}/_sandbox/cloudtrail", timeout=5) as r:  # noqa: S310
        pending = json.loads(r.read())["pending"]
    connection = runtime.broker_connection()
    url = watch_queue.watch_queue_url(connection, profile.aws_target())
    sqs = watch_queue._clients(connection).client("sqs", profile.region)
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return f"{pending} in the trail, {depth['Attributes']['ApproximateNumberOfMessages']} queued"


def sandbox_idle(state, timeout: float = 120) -> None:
    """Until the sandbox's trail worker has recorded and delivered every call so far (or the
    timeout: the figures then say how many calls were not recorded)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{state.endpoint_url}/_sandbox/cloudtrail", timeout=5) as r:  # noqa: S310
            if not json.loads(r.read())["pending"]:
                return
        time.sleep(0.2)
    log(f"the sandbox's trail is still behind after {timeout:.0f} s")


def observed(request_id, timeout: float = WAIT) -> None:
    """Until the watcher recorded the request's AssumeRole (a poll ran since it was issued)."""
    from approvals.models import ObservedUse

    deadline = time.monotonic() + timeout
    while not ObservedUse.objects.filter(request_id=request_id).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the watcher recorded no AssumeRole within {timeout:.0f} s")
        time.sleep(0.1)


def approvals_during(cast, profiles: list, stop_after: float, bare, bare_ms: list) -> list:
    """GRANTS_DURING_BURST approvals spread over the burst, each followed by the bare AWS calls
    of an activation (the reference, into `bare_ms`) → their request ids."""
    ids = []
    for n in range(GRANTS_DURING_BURST):
        time.sleep(stop_after / GRANTS_DURING_BURST)
        profile = profiles[n // GRANTS_PER_PROFILE]
        ids.append(cast.open_and_approve(profile, f"INC-{900 + n}"))
        bare_ms.append(bare.timed(n)[0])
    return ids


def main() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    with running_sandbox() as state, tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp)
        env = portal_env(
            state, var_dir, database_url=throwaway_postgres("bench_activity"),
            broker_url=BROKER_URL, queue="bench-activity",
        )  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        cast = Cast(approvals=2 * (GRANTS_DURING_BURST + 1))
        profile = sandbox_profile(state, var_dir, cast.group)
        others = sandbox_profiles(state, var_dir, cast.group, GRANTS_DURING_BURST)
        bare = BareCalls(state, sandbox_profile(state, var_dir, cast.group), var_dir)
        ref_sqs, ref_url = reference_queue(state, profile)
        processes = Processes(env, var_dir)
        processes.worker()
        processes.beat()
        try:
            results = run(state, cast, (profile, others, bare), processes, ref_sqs, ref_url)
        finally:
            processes.stop_all()
    report(results)


def run(state, cast, profiles: tuple, processes, ref_sqs, ref_url) -> dict:
    """profiles: the session's (whose watch is measured), those the other grants use, and the
    bare reference's calls."""
    from approvals.models import AccessRequest
    from approvals.services.watch import watch_poll

    profile, others, bare = profiles
    session = cast.open_and_approve(profile, "INC-0")
    wait_active([session])
    # The watcher is up and caught up: the session's own AssumeRole is on the record.
    observed(session)
    sqs = session_client(state, profile.region, cast.credentials(session))

    log(f"phase 1: {CALLS} calls in {SECONDS} s, {GRANTS_DURING_BURST} approvals meanwhile")
    approving: list = []
    bare_ms: list[float] = []
    approver = threading.Thread(
        target=lambda: approving.extend(
            approvals_during(cast, others, SECONDS * 0.9, bare, bare_ms)
        )
    )
    approver.start()
    sent = burst(sqs, "burst", SECONDS)
    approver.join()
    burst_seconds = max(sent.values()) - min(sent.values())
    recorded = wait_rows("burst", CALLS, timeout=WAIT, progress=lambda: backlog(state, profile))
    # A call still unrecorded when the wait ends counts as its whole wait (a lower bound).
    delays = [(recorded.get(name, time.time()) - moment) * 1000 for name, moment in sent.items()]
    wait_active(approving)
    access = [r.time_to_access_ms for r in AccessRequest.objects.filter(pk__in=approving)]
    processes.stop("beat")
    time.sleep(4)  # a poll already under way ends (its long poll is 1 s)
    sandbox_idle(state, timeout=WAIT)
    # Both queues start phase 2 empty (what phase 1 left unrecorded is dropped).
    purge(state, profile, ref_url)

    log(f"phase 2: {QUEUED} calls waiting in the queue, then the watcher's poll against bare SQS")
    queued = burst(sqs, "queued", 0, count=QUEUED)
    sandbox_idle(state, timeout=WAIT)
    started, began = time.perf_counter(), time.time()
    while time.perf_counter() - started < WAIT:
        watch_poll(wait_seconds=1)  # the default long poll
        if len(rows_named("queued")) >= len(queued):
            break
    # Drained when the last row was stored: the poll that stored it then waits out its long poll
    # on the empty queue, which is not work.
    stored = rows_named("queued")
    watcher_rate = len(stored) / (max(stored.values(), default=time.time()) - began)
    bare_rate = bare_drain(ref_sqs, ref_url, len(queued))
    return {
        "delays": delays, "missing": CALLS - len(recorded), "burst_seconds": burst_seconds,
        "access": access, "bare_access": bare_ms, "watcher": watcher_rate, "bare": bare_rate,
    }  # fmt: skip


def report(results: dict) -> None:
    delays, access, missing = results["delays"], results["access"], results["missing"]
    bare_access = results["bare_access"]
    print(
        f"{CALLS} calls sent in {results['burst_seconds']:.0f} s (asked: {SECONDS:.0f} s); call → "
        f"activity row p50 {percentile(delays, 0.5):.0f} ms p95 {percentile(delays, 0.95):.0f} ms"
        f" ({missing} not recorded within {WAIT} s after the burst, counted at that); "
        f"time-to-access during the burst p50 {percentile(access, 0.5):.0f} ms p95 "
        f"{percentile(access, 0.95):.0f} ms (bare PutUserPolicy + AssumeRole meanwhile p50 "
        f"{percentile(bare_access, 0.5):.0f} ms p95 {percentile(bare_access, 0.95):.0f} ms); "
        f"watcher {results['watcher']:.0f} events/s, bare SQS "
        f"receive + delete {results['bare']:.0f} events/s"
    )
    rows = [
        {"figure": f"call → activity row, p50 / p95, {CALLS} calls sent in "
                   f"{results['burst_seconds']:.0f} s ({missing} unrecorded after {WAIT} s)",
         "ours": f"{percentile(delays, 0.5):,.0f} / {percentile(delays, 0.95):,.0f} ms",
         "target": "p95 < 3000 ms"},
        {"figure": f"watcher throughput, events/s ({QUEUED} waiting in the queue)",
         "ours": round(results["watcher"]),
         "reference": f"{results['bare']:.0f} bare SQS receive + delete",
         "ratio": round(results["watcher"] / results["bare"], 2), "target": ">= 500 events/s"},
        {"figure": f"time-to-access p95 during the burst ({len(access)} grants)",
         "ours_ms": round(percentile(access, 0.95), 1),
         "reference_ms": round(percentile(bare_access, 0.95), 1),
         "ratio": round(percentile(access, 0.95) / percentile(bare_access, 0.95), 2),
         "target": "< 150 ms"},
    ]  # fmt: skip
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
