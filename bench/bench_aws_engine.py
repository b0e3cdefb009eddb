"""Benchmark: grant + issue + revoke through AccessEngine vs the same AWS calls made bare.

Starts its own sandbox on a free loopback port. Both sides use pre-built clients and the same
identities, alternating per iteration so drift in the sandbox affects both equally.
Usage: python bench/bench_aws_engine.py [N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from awsaccess import policies  # noqa: E402
from awsaccess.engine import AccessEngine  # noqa: E402
from awsaccess.sandbox.__main__ import wait_until_up  # noqa: E402
from awsaccess.sandbox.bootstrap import SandboxState, bootstrap  # noqa: E402
from awsaccess.types import Grant  # noqa: E402
from tests.sandbox_plugin import free_port  # noqa: E402


def grant_for_run() -> Grant:
    request_id = str(uuid.uuid4())
    return Grant(
        request_id,
        f"BENCH-{request_id[:8]}",
        {"request-id": request_id, "ticket": "B"},
        datetime.now(UTC) + timedelta(minutes=30),
    )


def ours(engine: AccessEngine, state: SandboxState) -> float:
    target, grant = state.target(), grant_for_run()
    started = time.perf_counter()
    engine.grant_attach(target, grant)
    engine.credentials_issue(target, grant, state.principal_keys)
    engine.grant_revoke(target, grant)
    return time.perf_counter() - started


def bare(iam, sts, state: SandboxState) -> float:
    """The same AWS calls, with the same documents, and no wrapper."""
    target, grant = state.target(), grant_for_run()
    user = target.principal_arn.rsplit("/", 1)[1]
    now = datetime.now(UTC)
    started = time.perf_counter()
    iam.put_user_policy(
        UserName=user,
        PolicyName=policies.grant_policy_name(grant),
        PolicyDocument=policies.to_json(policies.grant_policy(target, grant)),
    )
    sts.assume_role(
        RoleArn=target.role_arn,
        RoleSessionName=grant.session_name,
        SourceIdentity=grant.request_id,
        Tags=[{"Key": k, "Value": v} for k, v in grant.tags.items()],
        DurationSeconds=1800,
    )
    iam.list_role_policies(RoleName=target.role_name)
    iam.put_role_policy(
        RoleName=target.role_name,
        PolicyName=policies.revocation_policy_name(
            grant.request_id, policies.revocation_not_after(target, grant, now)
        ),
        PolicyDocument=policies.to_json(policies.revocation_policy(grant.request_id)),
    )
    iam.delete_user_policy(UserName=user, PolicyName=policies.grant_policy_name(grant))
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "awsaccess.sandbox", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(endpoint, timeout=30)
        with tempfile.TemporaryDirectory() as state_dir:
            state, _ = bootstrap(endpoint, Path(state_dir))
            engine = AccessEngine(state.broker)
            broker = boto3.session.Session(
                aws_access_key_id=state.broker.access_key_id,
                aws_secret_access_key=state.broker.secret_access_key,
            )
            iam = broker.client("iam", endpoint_url=endpoint, region_name="us-east-1")
            sts = boto3.session.Session(
                aws_access_key_id=state.principal_keys.access_key_id,
                aws_secret_access_key=state.principal_keys.secret_access_key,
            ).client("sts", endpoint_url=endpoint, region_name=state.region)
            for _ in range(3):  # warm both paths (client creation, connection pools)
                ours(engine, state)
                bare(iam, sts, state)
            ours_times, bare_times = [], []
            for _ in range(runs):
                ours_times.append(ours(engine, state))
                bare_times.append(bare(iam, sts, state))
                # Keep the role's revocation policies from growing without bound.
                engine.revocations_prune(state.target(), now=datetime.now(UTC) + timedelta(days=1))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    ours_p50, bare_p50 = statistics.median(ours_times) * 1000, statistics.median(bare_times) * 1000
    print(f"runs: {runs} grant+issue+revoke sequences each")
    print(
        f"AccessEngine  p50 {ours_p50:7.1f} ms  p95 {percentile(ours_times, 0.95) * 1000:7.1f} ms"
    )
    print(
        f"bare boto3    p50 {bare_p50:7.1f} ms  p95 {percentile(bare_times, 0.95) * 1000:7.1f} ms"
    )
    print(f"ratio (p50)   {ours_p50 / bare_p50:.3f}")
    print(
        json.dumps(
            {
                "figure": "grant+issue+revoke p50 vs bare boto3",
                "ours_ms": round(ours_p50, 2),
                "reference_ms": round(bare_p50, 2),
                "ratio": round(ours_p50 / bare_p50, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
