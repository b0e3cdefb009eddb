"""Timeline figures (issue 2): verifying 100,000 events, and the cost of appending one.

Runs once per database (SQLite file and PostgreSQL when reachable), each in a child process on a
throwaway database. Reference, measured in the same run: a bare single-row INSERT of the same
stack (Heartbeat upsert) for the append, and the raw fetch of the same 100,000 rows for verify.

    python bench/bench_timeline.py
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import throwaway_postgres  # noqa: E402

EVENTS = 100_000
APPENDS = 1000


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def child() -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from approvals.models import Heartbeat, TimelineEvent, TimelineHead, event_hash
    from approvals.timeline import GENESIS_HASH, timeline_append, timeline_verify

    call_command("migrate", verbosity=0)
    # A valid chain, written in bulk: 1,000 requests' worth of 100 events each.
    now = timezone.now()
    rows, heads = [], []
    for chain_no in range(EVENTS // 100):
        chain, prev = f"request:bench-{chain_no}", GENESIS_HASH
        for sequence in range(1, 101):
            fields = dict(
                chain=chain, sequence=sequence, prev_hash=prev, created_at=now,
                actor_name="bench", code="bench.event", outcome="success",
                detail={"n": sequence, "ticket": "INC-1"}, source_ip="192.0.2.1",
                user_agent="bench",
            )  # fmt: skip
            digest = event_hash(**fields)
            rows.append(TimelineEvent(**fields, hash=digest))
            prev = digest
        heads.append(TimelineHead(chain=chain, sequence=100, hash=prev))
    TimelineEvent.objects.bulk_create(rows, batch_size=5000)
    TimelineHead.objects.bulk_create(heads)

    started = time.perf_counter()
    result = timeline_verify()
    verify_s = time.perf_counter() - started
    assert result.ok and result.events_checked == EVENTS, result

    started = time.perf_counter()
    fetched = sum(1 for _ in TimelineEvent.objects.values_list("hash").iterator(chunk_size=5000))
    fetch_s = time.perf_counter() - started
    assert fetched == EVENTS

    # Interleaved, so background work (checkpoints after the bulk load) hits all three alike.
    # Events are appended inside the transaction of the change they record: what an append adds
    # there is its own statements, not a commit.
    in_transaction_ms, append_ms, insert_ms = [], [], []
    for n in range(APPENDS):
        with transaction.atomic():
            started = time.perf_counter()
            timeline_append(access_request=None, code="bench.in_transaction", detail={"n": n})
            in_transaction_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        timeline_append(access_request=None, code="bench.append", detail={"n": n})
        append_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        Heartbeat.objects.update_or_create(component=f"bench-{n % 10}", defaults={"seen_at": now})
        insert_ms.append((time.perf_counter() - started) * 1000)
    return {
        "vendor": connection.vendor,
        "verify_s": verify_s,
        "fetch_s": fetch_s,
        "append_p95_ms": p95(append_ms),
        "append_in_transaction_p95_ms": p95(in_transaction_ms),
        "insert_p95_ms": p95(insert_ms),
    }


def run_child(database_url: str, var_dir: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "BREAKGLASS_VAR_DIR": var_dir,
        "BENCH_CHILD": "1",
        "BREAKGLASS_LOG_LEVEL": "WARNING",
    }
    output = subprocess.run(
        [sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900, check=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def postgres_database() -> str | None:
    try:
        return throwaway_postgres("bench_timeline")
    except Exception as exc:  # a bench without PostgreSQL still reports SQLite
        print(f"PostgreSQL not available ({exc}); SQLite only", file=sys.stderr)
        return None


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as var_dir:
        results.append(run_child(f"sqlite:///{var_dir}/bench.sqlite3", var_dir))
        pg_url = postgres_database()
        if pg_url:
            results.append(run_child(pg_url, var_dir))
    for r in results:
        print(
            f"{r['vendor']:10} verify {EVENTS:,} events {r['verify_s']:.2f} s "
            f"(raw fetch {r['fetch_s']:.2f} s) | append p95 {r['append_p95_ms']:.2f} ms, "
            f"inside a transaction {r['append_in_transaction_p95_ms']:.2f} ms "
            f"(bare upsert p95 {r['insert_p95_ms']:.2f} ms)"
        )
    for r in results:
        print(
            json.dumps(
                {
                    "figure": f"timeline verify 100k events ({r['vendor']})",
                    "ours_ms": round(r["verify_s"] * 1000, 1),
                    "reference_ms": round(r["fetch_s"] * 1000, 1),
                    "ratio": round(r["verify_s"] / r["fetch_s"], 2),
                    "target": "< 2000 ms",
                }
            )
        )
        print(
            json.dumps(
                {
                    "figure": f"timeline append inside a transaction p95 ({r['vendor']})",
                    "ours_ms": round(r["append_in_transaction_p95_ms"], 3),
                    "reference_ms": round(r["insert_p95_ms"], 3),
                    "ratio": round(r["append_in_transaction_p95_ms"] / r["insert_p95_ms"], 2),
                    "target": "< 2 ms",
                }
            )
        )
        print(json.dumps({"figure": f"timeline append with its own commit p95 ({r['vendor']})",
                          "ours_ms": round(r["append_p95_ms"], 3),
                          "reference_ms": round(r["insert_p95_ms"], 3),
                          "ratio": round(r["append_p95_ms"] / r["insert_p95_ms"], 2),
                          "target": "< 2 ms"}))  # fmt: skip


if __name__ == "__main__":
    if os.environ.get("BENCH_CHILD"):
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child()))
    else:
        main()
