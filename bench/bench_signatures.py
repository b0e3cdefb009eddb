"""Signature and checkpoint figures (issue 14), on a throwaway PostgreSQL database.

* signing and verifying an approval, p95 (reference: bare Ed25519 sign + verify of the same bytes);
* a checkpoint over 10,000 chains after 1,000 new events (reference: reading the 10,000 heads);
* verify_timeline on 1,000,000 events, full (reference: bare SHA-256 over the same rows, fetched
  the same way) and incremental: 1,000 new events after a checkpoint.

The 1,000,000 events (10,000 chains of 100, interleaved in the table as a live portal's are) are
made inside PostgreSQL by one statement, hashed there with the published formula, with the head
trigger off for the load (the heads are written in one statement after it). Each verification
measured recomputes every hash in Python, so the fixture is checked by the run itself.

    python bench/bench_signatures.py
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import throwaway_postgres  # noqa: E402

CHAINS, PER_CHAIN, NEW_EVENTS, SAMPLES = 10_000, 100, 1_000, 1_000


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def approval_figures() -> tuple[float, float]:
    """→ (ours p95 ms, bare Ed25519 p95 ms) for one sign + one verify."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from approvals import signatures

    payload = {
        "request": "6f1c1f0e-8f5b-4f7e-9a61-1d2c3b4a5f60", "content_digest": "a" * 64,
        "approver_id": 42, "device": "otp_totp.sealedtotpdevice/42", "time_step": 59_000_000,
        "decision": "approve", "signed_at": "2026-11-22T01:40:00.123456+00:00",
    }  # fmt: skip
    ours, bare = [], []
    key = Ed25519PrivateKey.generate()
    message = signatures.signed_message("approval", payload)
    for _ in range(SAMPLES):
        started = time.perf_counter()
        signature = signatures.sign("approval", payload)
        assert signatures.verify("approval", payload, signature.key_id, signature.value)
        ours.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        key.public_key().verify(key.sign(message), message)
        bare.append((time.perf_counter() - started) * 1000)
    return p95(ours), p95(bare)


# The published formula in SQL, for this fixture's fixed fields only. STABLE (to_char is), so
# PostgreSQL inlines it. Every hash is recomputed in Python by the verifications measured below:
# a slip here fails the run.
EVENT_HASH_SQL = """
CREATE FUNCTION pg_temp.bench_hash(chain text, seq bigint, prev text, at timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT encode(sha256(convert_to(
    '["' || chain || '",' || seq || ',"' || prev || '","'
    || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00",'
    || '"bench","bench.event","success",{"n":' || seq || ',"ticket":"INC-1"},"192.0.2.1","bench"]',
    'UTF8')), 'hex')
$$
"""
# Chain n's event s at t0 + n µs + (s - 1) minutes, so the chains interleave in the table as a
# live portal's do (a scan in chain order jumps across it).
LOAD_SQL = """
INSERT INTO approvals_timelineevent (chain, sequence, created_at, actor_name, code, outcome,
    detail, source_ip, user_agent, prev_hash, hash)
WITH RECURSIVE walk(chain, sequence, at, prev_hash, hash) AS (
    SELECT chain, 1::bigint, at, %(genesis)s, pg_temp.bench_hash(chain, 1, %(genesis)s, at)
    FROM (SELECT 'request:bench-' || lpad(n::text, 5, '0'), %(t0)s + n * interval '1 microsecond'
          FROM generate_series(0, %(chains)s - 1) AS n) AS first(chain, at)
    UNION ALL
    SELECT chain, sequence + 1, at + interval '1 minute', hash,
           pg_temp.bench_hash(chain, sequence + 1, hash, at + interval '1 minute')
    FROM walk WHERE sequence < %(per_chain)s
)
SELECT chain, sequence, at, 'bench', 'bench.event', 'success',
       jsonb_build_object('n', sequence, 'ticket', 'INC-1'), '192.0.2.1', 'bench', prev_hash, hash
FROM walk
"""


def load_events() -> None:
    """10,000 valid chains of 100 events, made inside PostgreSQL in one statement (no row
    crosses the socket); heads in one INSERT … SELECT; the head trigger off for the load."""
    from django.db import connection
    from django.utils import timezone

    from approvals.timeline import GENESIS_HASH

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no per-row head trigger
        cursor.execute(EVENT_HASH_SQL)
        cursor.execute(
            LOAD_SQL,
            {"genesis": GENESIS_HASH, "t0": timezone.now(), "chains": CHAINS,
             "per_chain": PER_CHAIN},
        )  # fmt: skip
        assert cursor.rowcount == CHAINS * PER_CHAIN, cursor.rowcount
        cursor.execute(
            "INSERT INTO approvals_timelinehead (chain, sequence, hash) "
            "SELECT DISTINCT ON (chain) chain, sequence, hash FROM approvals_timelineevent "
            "ORDER BY chain, sequence DESC"
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        # What autovacuum does to a live table long before it holds a million events; here it
        # would otherwise start in the middle of a measurement.
        cursor.execute("VACUUM ANALYZE approvals_timelineevent")
        cursor.execute("VACUUM ANALYZE approvals_timelinehead")
    print(f"loaded {CHAINS * PER_CHAIN:,} events in {time.perf_counter() - started:.1f} s")


def append_new_events() -> None:
    from approvals.timeline import timeline_append

    for n in range(NEW_EVENTS):
        timeline_append(access_request=None, code="bench.new", detail={"n": n})


def bare_sha256_ms() -> float:
    """The same rows fetched the same way (the verifier's own stream), one SHA-256 over each
    row's chain, sequence, previous hash, time and detail: what any verification must pay."""
    import hashlib

    from approvals.timeline import _event_rows

    sha256, rows = hashlib.sha256, 0
    started = time.perf_counter()
    for row in _event_rows():
        sha256(f"{row[1]}{row[2]}{row[3]}{row[5]}{row[9]}".encode()).hexdigest()
        rows += 1
    assert rows >= CHAINS * PER_CHAIN, rows
    return (time.perf_counter() - started) * 1000


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


# 1,000 live appends spread over 1,000 of the fixture's chains (the head trigger on, as for any
# append): the incremental verification then walks 1,000 chains, not one.
SPREAD_SQL = """
INSERT INTO approvals_timelineevent (chain, sequence, created_at, actor_name, code, outcome,
    detail, source_ip, user_agent, prev_hash, hash)
SELECT chain, sequence + 1, at, 'bench', 'bench.event', 'success',
       jsonb_build_object('n', sequence + 1, 'ticket', 'INC-1'), '192.0.2.1', 'bench', hash,
       pg_temp.bench_hash(chain, sequence + 1, hash, at)
FROM (SELECT chain, sequence, hash, now() AS at FROM approvals_timelinehead
      WHERE chain LIKE 'request:bench-%%' ORDER BY chain LIMIT %(count)s) AS spread
"""


def spread_figure(results: dict) -> None:
    from django.db import connection

    from approvals.services.checkpoints import checkpoint_latest, timeline_checkpoint
    from approvals.timeline import timeline_verify_since

    assert timeline_checkpoint() is not None
    pins = checkpoint_latest().pins()
    with connection.cursor() as cursor:
        cursor.execute(SPREAD_SQL, {"count": NEW_EVENTS})
    results["spread_ms"], verification = timed(lambda: timeline_verify_since(verified=pins))
    assert verification.ok and verification.events_checked == NEW_EVENTS, verification


def phase(name: str, started: list[float]) -> None:
    """Print how long the run spent since the last phase (the script's own wall time, split)."""
    now = time.perf_counter()
    print(f"{name}: {now - started[0]:.1f} s", flush=True)
    started[0] = now


def child() -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from approvals.models import TimelineHead
    from approvals.services.checkpoints import checkpoint_latest, timeline_checkpoint
    from approvals.timeline import timeline_verify, timeline_verify_since

    clock = [time.perf_counter()]
    call_command("migrate", verbosity=0)
    results: dict = {}
    results["approval_ms"], results["approval_bare_ms"] = approval_figures()
    phase("migrate, approvals", clock)
    load_events()
    phase("fixture", clock)

    results["sha256_ms"] = bare_sha256_ms()
    results["full_ms"], verification = timed(timeline_verify)
    assert verification.ok and verification.events_checked == CHAINS * PER_CHAIN, verification
    results["first_checkpoint_ms"], first = timed(timeline_checkpoint)
    assert first is not None
    phase("reference, full verification, first checkpoint", clock)

    append_new_events()
    results["checkpoint_ms"], second = timed(timeline_checkpoint)
    assert second is not None and second.header["chain_count"] == CHAINS + 1
    results["heads_ms"], _ = timed(lambda: list(TimelineHead.objects.values_list("chain", "hash")))

    append_new_events()
    pins = checkpoint_latest().pins()
    results["incremental_ms"], verification = timed(lambda: timeline_verify_since(verified=pins))
    assert verification.ok and verification.events_checked == NEW_EVENTS, verification
    results["full_pinned_ms"], verification = timed(lambda: timeline_verify(pins=pins))
    assert verification.ok, verification
    spread_figure(results)
    phase("appends, checkpoints, incremental and pinned verifications", clock)
    return results


def run_child(database_url: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url,
        "BENCH_CHILD": "1",
        "BREAKGLASS_LOG_LEVEL": "WARNING",
        "BREAKGLASS_ANCHOR_BUCKET": "",
    }
    process = subprocess.run(
        [sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    if process.returncode != 0:
        raise SystemExit(process.stderr[-3000:])
    lines = process.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    return json.loads(lines[-1])


def figure(name: str, ours: float, reference: float, target: str = "") -> None:
    row = {"figure": name, "ours_ms": round(ours, 3), "reference_ms": round(reference, 3),
           "ratio": round(ours / reference, 2) if reference else None}  # fmt: skip
    if target:
        row["target"] = target
    print(json.dumps(row))


def main() -> None:
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as var_dir:
        os.environ["BREAKGLASS_VAR_DIR"] = var_dir
        database = throwaway_postgres("bench_signatures")
        print(f"throwaway database: {time.perf_counter() - started:.1f} s")
        r = run_child(database)
    print(f"bench_signatures: {time.perf_counter() - started:.0f} s in all")
    figure("sign + verify an approval, p95", r["approval_ms"], r["approval_bare_ms"])
    figure(
        "checkpoint over 10,000 chains after 1,000 new events (verify, sign, store)",
        r["checkpoint_ms"], r["heads_ms"],
    )  # fmt: skip
    figure("first checkpoint (full verification of 1,000,000 events)",
           r["first_checkpoint_ms"], r["sha256_ms"])  # fmt: skip
    figure("verify_timeline full, 1,000,000 events (PostgreSQL)", r["full_ms"], r["sha256_ms"],
           "< 15000 ms")  # fmt: skip
    figure("verify_timeline full against a checkpoint's 10,001 heads", r["full_pinned_ms"],
           r["sha256_ms"], "< 15000 ms")  # fmt: skip
    figure("verify_timeline incremental, 1,000 new events after a checkpoint",
           r["incremental_ms"], r["heads_ms"], "< 100 ms")  # fmt: skip
    figure("verify_timeline incremental, 1,000 new events over 1,000 chains",
           r["spread_ms"], r["heads_ms"], "< 100 ms")  # fmt: skip


if __name__ == "__main__":
    if os.environ.get("BENCH_CHILD"):
        print(json.dumps(child()))
    else:
        main()
