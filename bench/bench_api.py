"""Benchmark: the REST API under concurrent load, on gunicorn + PostgreSQL over loopback.

Creates a throwaway database (bench_api), migrates and seeds it, starts gunicorn, then drives
three endpoints from a second process with keep-alive HTTP connections in threads:
  ping   GET  /api/v1/me/        (auth + throttle + JSON: the trivial reference of the same stack)
  list   GET  /api/v1/requests/  (25 per page, with approvals)
  create POST /api/v1/requests/
Prints requests/s and p50/p95 per endpoint, then the final JSON line.
Usage: python bench/bench_api.py [seconds-per-endpoint] [threads]
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DATABASE = "bench_api"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
WARM_UP_SECONDS = 2.0
SEED = """
import django, json
django.setup()
from django.contrib.auth.models import Group, User
from approvals.models import AccessProfile
from approvals.services.api_access import personal_token_create
from approvals.services.identity import totp_device_set
from approvals.services.requests import request_open
group = Group.objects.create(name="approvers")
profile = AccessProfile.objects.create(
    slug="prod-admin", name="Prod", account_id="123456789012", region="eu-west-1",
    role_arn="arn:aws:iam::123456789012:role/bg", principal_arn="arn:aws:iam::123456789012:user/p",
    approver_group=group)
rita = User.objects.create_user("rita")
totp_device_set(user=rita)
for n in range(200):
    request_open(profile_slug="prod-admin", requester=rita, ticket=f"INC-{n}",
                 justification="seeded for the benchmark", duration_minutes=30)
print(json.dumps({"token": personal_token_create(user=rita)}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def load(port: int, token: str, scenario: str, seconds: float, threads: int) -> dict:
    """Runs in the second process: keep-alive connections, one per thread."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    body = json.dumps(
        {
            "profile": "prod-admin",
            "ticket": "INC-77",
            "justification": "benchmark",
            "duration_minutes": 30,
        }
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    method, path, expected = {
        "ping": ("GET", "/api/v1/me/", 200),
        "list": ("GET", "/api/v1/requests/?page_size=25", 200),
        "create": ("POST", "/api/v1/requests/", 201),
    }[scenario]

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request(
                method, path, body=body if method == "POST" else None, headers=headers
            )
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != expected:
                with lock:
                    errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "scenario": scenario,
        "requests": len(latencies),
        "errors": errors[0],
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    var_dir = tempfile.mkdtemp(prefix="bench-api-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "BREAKGLASS_CELERY_QUEUE": f"bench-api-{os.getpid()}",
        "BREAKGLASS_VAR_DIR": var_dir,
        "BREAKGLASS_API_TOKEN_RATE": "1000000/min",
        "DJANGO_DEBUG": "false",
        "BREAKGLASS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    admin_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin_sql(f"CREATE DATABASE {DATABASE}")
    gunicorn = None
    try:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
        )
        seeded = subprocess.run(
            [PYTHON, "-c", SEED], cwd=ROOT, env=env, check=True, timeout=300, capture_output=True
        )
        token = json.loads(seeded.stdout.decode().strip().splitlines()[-1])["token"]
        port = free_port()
        gunicorn = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2",
             "--access-logfile", "/dev/null", "--error-logfile", f"{var_dir}/gunicorn.log"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        results = {}
        # Ping runs first, briefly, to warm the workers up, and last: that one is the reference.
        for scenario, duration in (("ping", WARM_UP_SECONDS), ("list", seconds),
                                   ("create", seconds), ("ping", seconds)):  # fmt: skip
            # The load comes from a second process, as a separate client machine would.
            out = subprocess.run(
                [PYTHON, __file__, "--load", str(port), token, scenario, str(duration),
                 str(threads)],
                cwd=ROOT, env=env, check=True, capture_output=True, timeout=duration + 120,
            )  # fmt: skip
            result = json.loads(out.stdout.decode().strip().splitlines()[-1])
            print(json.dumps(result))
            results[scenario] = result
    finally:
        if gunicorn is not None and gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            try:
                gunicorn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
                gunicorn.wait(timeout=15)
        admin_sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    print(
        json.dumps(
            {
                "figure": "p95 latency of GET /api/v1/requests/ (25/page) vs GET /api/v1/me/, "
                f"gunicorn -w2 + PostgreSQL, {threads} client threads",
                "ours_ms": results["list"]["p95_ms"],
                "reference_ms": results["ping"]["p95_ms"],
                "ratio": round(results["list"]["p95_ms"] / results["ping"]["p95_ms"], 2),
                "list_rps": results["list"]["rps"],
                "create_rps": results["create"]["rps"],
                "create_p95_ms": results["create"]["p95_ms"],
                "ping_rps": results["ping"]["rps"],
                "errors": sum(r["errors"] for r in results.values()),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, token, scenario, seconds, threads = sys.argv[2:7]
        print(json.dumps(load(int(port), token, scenario, float(seconds), int(threads))))
    else:
        main()
