"""What the benchmarks share: a throwaway PostgreSQL database and the AWS sandbox process."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def throwaway_postgres(name: str) -> str:
    """Drop and create database `name`; return its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def running_sandbox() -> Iterator[object]:
    """The AWS sandbox on a free loopback port, bootstrapped; stopped by PID on exit."""
    sys.path.insert(0, str(ROOT))
    from awsaccess.sandbox.__main__ import wait_until_up
    from awsaccess.sandbox.bootstrap import bootstrap
    from tests.sandbox_plugin import free_port

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state_dir, open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(
            [sys.executable, "-m", "awsaccess.sandbox", "serve", "--port", str(port)],
            cwd=ROOT, stdout=devnull, stderr=devnull,
        )  # fmt: skip
        try:
            wait_until_up(endpoint, timeout=30)
            state, _ = bootstrap(endpoint, Path(state_dir))
            yield state
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
