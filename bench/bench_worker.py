"""Worker figures (issue 4), with PostgreSQL, Redis, real workers and beats, and the AWS sandbox.

1. time-to-access (second approval committed -> ACTIVE) over 50 requests, one after another,
   against the bare AWS calls of an activation (PutUserPolicy + AssumeRole) in the same run;
2. time-to-revoke at the deadline for those 50 grants (worker up), against the bare AWS calls
   of a revocation (PutRolePolicy + DeleteUserPolicy);
3. 200 grants expiring in the same minute: the latest revocation after its deadline;
4. time-to-revoke after the worker was killed past the deadline and restarted.

A grant lasts at least a minute, so phases wait for deadlines. They are laid out so that the
waits overlap while no two measurements do:
- phase 4 runs on a second portal (its own database, queues, worker and beat, in a child
  process): its 10 grants are activated and its worker killed before phase 1 starts, and the
  worker is restarted only once phase 3 is over. Meanwhile nothing of it runs but its beat,
  sending to queues nobody reads.
- phase 3's grants are activated while phase 1's wait for their deadlines: they start once the
  last of phase 1's deadlines is GAP seconds behind theirs, and stop (waiting for phase 2 to
  end) if they would reach the first of phase 1's deadlines.

Every approval is signed by an approver of its own, with the first code of a fresh TOTP device:
no approval can race a time step or the replay protection, so the run is deterministic.

    python bench/bench_worker.py        (about 2.5 minutes)
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    GRANTS_PER_PROFILE,
    BareCalls,
    Cast,
    Processes,
    log,
    logs_kept,
    portal_env,
    sandbox_profiles,
    wait_status,
)
from bench.support import percentile, running_sandbox, throwaway_postgres  # noqa: E402

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
KILLED_BROKER_URL = "redis://127.0.0.1:6379/8"  # the second portal's (phase 4)
SWEEP_SECONDS = 10
SEQUENTIAL, BURST, KILLED = 50, 200, 10
GAP = timedelta(seconds=5)  # between phase 1's last deadline and phase 3's first
MINUTE = timedelta(minutes=1)


def setup(state, var_dir: Path, *, database: str, broker_url: str, grants: int):
    """This process's portal: environment, database, approvers, profiles; its processes."""
    env = portal_env(
        state, var_dir, database_url=throwaway_postgres(database), broker_url=broker_url,
        queue=database.replace("_", "-"),
    )  # fmt: skip
    env["BREAKGLASS_SWEEP_INTERVAL_SECONDS"] = str(SWEEP_SECONDS)
    # The activity backstop at its default: nothing for it to read within a run (bench_access
    # and bench_activity keep it busy).
    env.pop("BREAKGLASS_ACTIVITY_BACKSTOP_SETTLE_SECONDS")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    cast = Cast(approvals=2 * grants)
    profiles = sandbox_profiles(state, var_dir, cast.group, grants, emails="")
    return cast, profiles, Processes(env, var_dir)


def open_all(cast: Cast, profiles: list, prefix: str, count: int, stop_at=None) -> list:
    """`count` one-minute requests, approved (GRANTS_PER_PROFILE per profile); fewer if the
    clock reaches `stop_at` first."""
    ids = []
    for n in range(count):
        if stop_at is not None and datetime.now(UTC) >= stop_at:
            break
        profile = profiles[n // GRANTS_PER_PROFILE]
        ids.append(cast.open_and_approve(profile, f"{prefix}-{n}", minutes=1))
    return ids


def revoked_late_ms(rows) -> list[float]:
    return [(row.revoked_at - row.expires_at).total_seconds() * 1000 for row in rows]


def sequential(cast: Cast, profiles: list) -> list:
    """Phase 1: one activation after another, each waited for."""
    log(f"phase 1: {SEQUENTIAL} activations, one after another")
    rows = []
    for n in range(SEQUENTIAL):
        request_id = cast.open_and_approve(profiles[n // GRANTS_PER_PROFILE], f"INC-{n}", minutes=1)
        rows += wait_status([request_id], "active", timeout=30)
    return rows


def burst(cast: Cast, profiles: list, first: list) -> tuple[list, list]:
    """Phase 3's activations, laid between phase 1's activations and deadlines; then phase 2
    (phase 1's revocations) and phase 3's revocations, each measured on its own."""
    starts = max(row.expires_at for row in first) + GAP - MINUTE
    time.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()))
    # Every activation done before phase 1's first deadline (with GAP to spare).
    stop_at = min(row.expires_at for row in first) - GAP
    log(f"phase 3: {BURST} grants expiring in the same minute, activated meanwhile")
    many = open_all(cast, profiles, "BURST", BURST, stop_at=stop_at)
    wait_status(many, "active", timeout=120)
    log(f"phase 2: phase 1's {SEQUENTIAL} grants revoked at their deadlines (worker up)")
    revoked = wait_status([row.pk for row in first], "revoked", timeout=150)
    if len(many) < BURST:
        log(f"phase 3: only {len(many)} fitted before phase 1's deadlines; the rest now")
        rest = open_all(cast, profiles[len(many) // GRANTS_PER_PROFILE + 1 :], "LATE",
                        BURST - len(many))  # fmt: skip
        many += rest
    return revoked, wait_status(many, "revoked", timeout=180)


def main() -> None:
    import redis

    for url in (BROKER_URL, KILLED_BROKER_URL):
        redis.Redis.from_url(url).flushdb()
    with running_sandbox() as state, tempfile.TemporaryDirectory() as tmp:
        state_file = Path(tmp) / "state.pickle"
        import pickle

        state_file.write_bytes(pickle.dumps(state))
        (Path(tmp) / "killed").mkdir()
        killed = subprocess.Popen(
            [sys.executable, __file__, "--killed", str(state_file), str(Path(tmp) / "killed")],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            results = measure(state, Path(tmp), killed)
        except BaseException:
            logs_kept(Path(tmp))
            raise
        finally:
            if killed.poll() is None:
                killed.kill()
                killed.wait(timeout=15)
    report(results)


def measure(state, var_dir: Path, killed: subprocess.Popen) -> dict:
    # One more profile for phase 3's late ones (see burst), one for the bare reference.
    grants = SEQUENTIAL + BURST + 2 * GRANTS_PER_PROFILE
    cast, profiles, processes = setup(
        state, var_dir, database="bench_worker", broker_url=BROKER_URL, grants=grants
    )
    reference = profiles.pop()
    log(f"phase 4 (second portal): {answer(killed, 'DOWN')}")
    processes.worker()
    processes.beat()
    try:
        first = sequential(cast, profiles)
        revoked, many = burst(cast, profiles[SEQUENTIAL // GRANTS_PER_PROFILE :], first)
    finally:
        processes.stop_all()
    assert killed.stdin is not None
    killed.stdin.write("go\n")
    killed.stdin.flush()
    restart = json.loads(answer(killed, "RESULT"))
    killed.wait(timeout=30)
    bare_access, bare_revoke = bare_aws_ms(state, reference, var_dir)
    return {
        "access": [row.time_to_access_ms for row in first],
        "revoke": revoked_late_ms(revoked),
        "burst": revoked_late_ms(many),
        "burst_spread_s": (
            max(r.expires_at for r in many) - min(r.expires_at for r in many)
        ).total_seconds(),
        "restart": restart,
        "bare_access": bare_access,
        "bare_revoke": bare_revoke,
    }


def answer(child: subprocess.Popen, word: str) -> str:
    """The rest of the child's next line starting with `word` (other lines are shown)."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(word + " "):
            return line.removeprefix(word + " ").strip()
        print(line, end="")
    raise SystemExit(f"phase 4's portal ended (exit {child.wait(timeout=30)}) without {word}")


def killed_worker(state_file: str, var_dir: Path) -> None:
    """Phase 4, on a portal of its own: KILLED grants active, the worker killed; on "go" (and
    past the deadlines) the worker restarted -> how long after the restart each was revoked."""
    import pickle

    from django.utils import timezone

    state = pickle.loads(Path(state_file).read_bytes())  # noqa: S301 (our own parent wrote it)
    cast, profiles, processes = setup(
        state, var_dir, database="bench_worker_killed", broker_url=KILLED_BROKER_URL,
        grants=KILLED,
    )  # fmt: skip
    processes.worker()
    processes.beat()
    try:
        ids = open_all(cast, profiles, "KILLED", KILLED)
        rows = wait_status(ids, "active", timeout=60)
        processes.stop_workers(kill=True)
        print(f"DOWN {KILLED} grants active, workers killed", flush=True)
        sys.stdin.readline()
        latest = max(row.expires_at for row in rows)
        time.sleep(max(0.0, (latest - timezone.now()).total_seconds()) + 5)
        restarted = timezone.now()
        processes.worker()
        after = wait_status(ids, "revoked", timeout=60)
    finally:
        processes.stop_all()
    print("RESULT", json.dumps([(r.revoked_at - restarted).total_seconds() * 1000 for r in after]))


def bare_aws_ms(state, profile, var_dir: Path) -> tuple[float, float]:
    """The AWS calls of an activation and of a revocation, bare boto3, same documents -> p50s."""
    bare = BareCalls(state, profile, var_dir)
    activate, revoke = zip(*(bare.timed(n) for n in range(SEQUENTIAL)), strict=True)
    return percentile(list(activate), 0.5), percentile(list(revoke), 0.5)


def report(results: dict) -> None:
    access, revoke = results["access"], results["revoke"]
    burst_ms, restart = results["burst"], results["restart"]
    bare_access, bare_revoke = results["bare_access"], results["bare_revoke"]
    print(
        f"time-to-access  p50 {percentile(access, 0.5):.0f} ms  p95 {percentile(access, 0.95):.0f}"
        f" ms  (bare AWS calls p50 {bare_access:.0f} ms)\n"
        f"time-to-revoke  p50 {percentile(revoke, 0.5):.0f} ms  max {max(revoke):.0f} ms at the "
        f"deadline (bare AWS calls p50 {bare_revoke:.0f} ms)\n"
        f"{len(burst_ms)} grants (deadlines spread over {results['burst_spread_s']:.0f} s): latest "
        f"revoked {max(burst_ms) / 1000:.1f} s after its deadline, p50 "
        f"{percentile(burst_ms, 0.5):.0f} ms\n"
        f"worker killed: revoked at most {max(restart) / 1000:.1f} s after restart "
        f"(bound: sweeper period {SWEEP_SECONDS} s + 5 s)"
    )
    figures = [
        ("time-to-access p50", percentile(access, 0.5), bare_access, "< 300 ms"),
        ("time-to-access p95", percentile(access, 0.95), bare_access, "< 1000 ms"),
        ("time-to-revoke at deadline p50", percentile(revoke, 0.5), bare_revoke, "< 1000 ms"),
        ("time-to-revoke at deadline max", max(revoke), bare_revoke, "< 2000 ms"),
        ("200 grants: latest revocation after deadline", max(burst_ms), bare_revoke,
         "< 10000 ms"),
        ("worker killed: revoked after restart (max)", max(restart), SWEEP_SECONDS * 1000,
         "< 15000 ms"),
    ]  # fmt: skip
    for figure, ours, reference, target in figures:
        print(json.dumps({"figure": figure, "ours_ms": round(ours, 1),
                          "reference_ms": round(reference, 1),
                          "ratio": round(ours / reference, 2), "target": target}))  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--killed"]:
        killed_worker(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
