"""Real Celery worker and beat processes for tests, started and stopped by PID.

Each runs in its own session (process group) so a kill -9 takes its pool children with it, as
losing the machine would.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 15.0


def database_url() -> str:
    """The URL of the test database this pytest process is using."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user = db.get("USER") or "postgres"
        host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
        return f"postgres://{user}@{host}:{port}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BREAKGLASS_TEST_CHILD": "true",
            "DATABASE_URL": database_url(),
            "BREAKGLASS_CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "BREAKGLASS_CELERY_GRANTS_QUEUE": settings.CELERY_GRANTS_QUEUE,
            "BREAKGLASS_TEST_VAR_DIR": str(settings.VAR_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.CELERY_BROKER_URL != "filesystem://":
        env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    else:
        env.pop("CELERY_BROKER_URL", None)
    env.update(extra)
    return env


@dataclass
class ManagedProcess:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self, *, ready_text: str | None = None, timeout: float = 30.0) -> "ManagedProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if ready_text:
            self.wait_for_log(ready_text, timeout=timeout)
        return self

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        start_size = 0
        while time.monotonic() < deadline:
            content = self.log_path.read_text(errors="replace")
            if text in content[start_size:]:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{content[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not log {text!r} within {timeout}s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """Lose the process and its children at once, with no chance to clean up."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        if not self.running:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def celery_worker(
    log_dir: Path, env: dict[str, str], *, name: str = "worker", grants_only: bool = False
) -> ManagedProcess:
    """A worker consuming the grants queue first, then the rest (as `make run`'s does), or with
    `grants_only` one that consumes only the grants queue (`make run`'s grants worker)."""
    queues = ["--grants-only"] if grants_only else [
        "-Q", f"{env['BREAKGLASS_CELERY_GRANTS_QUEUE']},{env['BREAKGLASS_CELERY_QUEUE']}"
    ]  # fmt: skip
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "worker", *queues,
        "--concurrency", "2", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        "-n", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]  # fmt: skip
    return ManagedProcess(name, command, env, log_dir / f"{name}.log")


def celery_beat(log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
        "--schedule", str(log_dir / f"beat-schedule-{time.monotonic_ns()}"),
    ]  # fmt: skip
    return ManagedProcess("beat", command, env, log_dir / "beat.log")


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")
