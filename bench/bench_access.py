"""Time-to-access (second approval committed → ACTIVE, the portal's own time_to_access_ms) on
`make run`'s defaults — SQLite and the embedded filesystem broker, the worker as `make run` starts
it — beside PostgreSQL + Redis, each with the other work busy: every approval sends notices (two
emails, a chat webhook) and webhooks, beat's watcher polls, and a break-glass session makes ten
calls a second for the watcher to record.

Each set-up runs in its own process (Django reads its settings once).

    python bench/bench_access.py            (about 2 minutes)
"""

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    GRANTS_PER_PROFILE,
    Cast,
    Processes,
    Receiver,
    log,
    portal_env,
    sandbox_profiles,
    wait_active,
)
from bench.support import percentile, running_sandbox, throwaway_postgres  # noqa: E402

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
GRANTS = 60
# Grants made before measuring, once everything has started: each worker process's first task
# opens its database connection and makes its first AWS calls (botocore builds its parsers then),
# which a long-running worker does once. They are reported apart ("first grants").
WARM_UP = 4
CALLS_PER_SECOND = 10


def session_calls(credentials: dict, endpoint_url: str, region: str, stop) -> None:
    """The watch's work: a session calling AWS CALLS_PER_SECOND times a second (in a process of
    its own, as the engineer's AWS CLI is)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, **credentials)
    while not stop.wait(1 / CALLS_PER_SECOND):
        s3.list_buckets()


def measure(setup: str, state_file: str, var_dir: Path) -> dict:
    """One set-up, in this (child) process: → {"p50": ms, "p95": ms}."""
    import pickle

    state = pickle.loads(Path(state_file).read_bytes())  # noqa: S301 (our own parent wrote it)
    database = (
        f"sqlite:///{var_dir}/db.sqlite3"
        if setup == "embedded"
        else throwaway_postgres("bench_access")
    )
    broker = None if setup == "embedded" else BROKER_URL
    env = portal_env(
        state, var_dir, database_url=database, broker_url=broker, queue=f"bench-access-{setup}"
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from approvals.models import AccessRequest
    from approvals.services.webhooks import webhook_endpoint_create

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    receiver = Receiver()
    cast = Cast(approvals=2 * (GRANTS + WARM_UP))
    profiles = sandbox_profiles(
        state, var_dir, cast.group, GRANTS + WARM_UP, notices_to=receiver.url
    )
    webhook_endpoint_create(url=receiver.url)
    processes = Processes(env, var_dir)
    # Beat first: its start (a second of CPU) is over by the time both workers are ready.
    processes.beat()
    processes.worker()
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    busy = None
    try:
        warm_ups = []
        for n in range(WARM_UP):
            warm_ups.append(
                cast.open_and_approve(profiles[n // GRANTS_PER_PROFILE], f"INC-{9000 + n}")
            )
            wait_active([warm_ups[-1]])
        first = warm_ups[0]
        credentials = cast.credentials(first)
        busy = spawn.Process(
            target=session_calls,
            args=(
                {
                    "aws_access_key_id": credentials.access_key_id,
                    "aws_secret_access_key": credentials.secret_access_key,
                    "aws_session_token": credentials.session_token,
                },
                state.endpoint_url,
                profiles[0].region,
                stop,
            ),
        )
        busy.start()
        ids = []
        for n in range(GRANTS):
            profile = profiles[(n + WARM_UP) // GRANTS_PER_PROFILE]
            ids.append(cast.open_and_approve(profile, f"INC-{n + 1}"))
            wait_active([ids[-1]])
        stop.set()
        busy.join(timeout=10)
        rows = list(AccessRequest.objects.filter(pk__in=ids))
        times = [row.time_to_access_ms for row in rows]
        first_times = [
            row.time_to_access_ms
            for row in AccessRequest.objects.filter(pk__in=warm_ups).order_by("approved_at")
        ]
        log(f"{setup}: the {WARM_UP} first grants after the start (not counted): {first_times} ms")
        spans = steps_ms(rows, cast.approved_sent)
        log(f"{setup}: {receiver.count} notices and webhooks received meanwhile")
    finally:
        stop.set()
        if busy is not None and busy.is_alive():
            busy.join(timeout=10)
            busy.kill()
        processes.stop_all()
        receiver.stop()
    waits = [
        sent + picked
        for sent, picked in zip(
            spans["approval commits + sends"], spans["worker picks it up + checks"], strict=True
        )
    ]
    log(f"{setup}: " + ", ".join(
        f"{label} p50 {percentile(ms, 0.5):.0f} / p95 {percentile(ms, 0.95):.0f} ms"
        for label, ms in spans.items()
    ))  # fmt: skip
    return {
        "p50": percentile(times, 0.5), "p95": percentile(times, 0.95),
        "wait_p50": percentile(waits, 0.5), "wait_p95": percentile(waits, 0.95),
        "first_max": max(first_times),
    }  # fmt: skip


# The timeline events an activation appends, in order: (code, what the time up to it is).
STEPS = (
    ("approvals.activation.started", "worker picks it up + checks"),
    ("approvals.activation.grant_attached", "PutUserPolicy"),
    ("approvals.request.active", "AssumeRole + store"),
)


def steps_ms(rows, approved_sent: dict) -> dict[str, list[float]]:
    """Where each activation's time went (ms): second approval -> committed and its messages
    sent -> the worker starting the activation -> grant attached -> ACTIVE (its timeline)."""
    from approvals.models import TimelineEvent

    at = {
        (request_id, code): created
        for request_id, code, created in TimelineEvent.objects.filter(
            request__in=rows, code__in=[code for code, _ in STEPS]
        ).values_list("request_id", "code", "created_at")
    }
    spans: dict[str, list[float]] = {"approval commits + sends": []}
    spans.update({label: [] for _, label in STEPS})
    for row in rows:
        spans["approval commits + sends"].append(
            (approved_sent[row.pk] - row.approved_at).total_seconds() * 1000
        )
        before = approved_sent[row.pk]
        for code, label in STEPS:
            spans[label].append((at[row.pk, code] - before).total_seconds() * 1000)
            before = at[row.pk, code]
    return spans


def main() -> None:
    import pickle

    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()
    results = {}
    with running_sandbox() as state, tempfile.TemporaryDirectory() as tmp:
        state_file = Path(tmp) / "state.pickle"
        state_file.write_bytes(pickle.dumps(state))
        for setup in ("embedded", "redis"):
            var_dir = Path(tmp) / setup
            var_dir.mkdir()
            log(f"{setup}: {GRANTS} grants, one after another, with notices, webhooks and calls")
            child = subprocess.run(
                [sys.executable, __file__, "--setup", setup, str(state_file), str(var_dir)],
                cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            for line in child.stdout.splitlines():
                if line.startswith("RESULT "):
                    results[setup] = json.loads(line.removeprefix("RESULT "))
                else:
                    print(line)
            if setup not in results:
                raise SystemExit(f"{setup} failed:\n{child.stderr[-3000:]}")
    embedded, fast = results["embedded"], results["redis"]
    print(
        f"time-to-access, make run defaults (SQLite + filesystem broker): p50 "
        f"{embedded['p50']:.0f} ms p95 {embedded['p95']:.0f} ms; PostgreSQL + Redis: p50 "
        f"{fast['p50']:.0f} ms p95 {fast['p95']:.0f} ms. Of which waiting for the worker "
        f"(approval → activation started): p50 / p95 {embedded['wait_p50']:.0f} / "
        f"{embedded['wait_p95']:.0f} ms embedded, {fast['wait_p50']:.0f} / {fast['wait_p95']:.0f}"
        " ms Redis"
    )
    figures = [
        ("time-to-access p50, make run defaults (SQLite + filesystem broker), busy",
         embedded["p50"], fast["p50"], "< 1000 ms"),
        ("time-to-access p95, make run defaults (SQLite + filesystem broker), busy",
         embedded["p95"], fast["p95"], "—"),
        ("time-to-access p95, PostgreSQL + Redis, busy", fast["p95"], None, "< 150 ms"),
        ("  of which waiting for the worker, p95, make run defaults", embedded["wait_p95"],
         None, "—"),
        ("  of which waiting for the worker, p95, PostgreSQL + Redis", fast["wait_p95"],
         None, "—"),
        (f"time-to-access, slowest of the {WARM_UP} first grants after the workers start, "
         "make run defaults (reference: PostgreSQL + Redis)", embedded["first_max"],
         fast["first_max"], "—"),
    ]  # fmt: skip
    for figure, ours, reference, target in figures:
        row = {"figure": figure, "ours_ms": round(ours, 1), "target": target}
        if reference:
            row.update(reference_ms=round(reference, 1), ratio=round(ours / reference, 2))
        print(json.dumps(row))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--setup"]:
        outcome = measure(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
        print("RESULT " + json.dumps(outcome), flush=True)
    else:
        main()
