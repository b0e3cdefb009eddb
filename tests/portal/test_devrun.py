"""`make run` leaves nothing behind: closing its terminal (SIGHUP to its process group) or killing
the runner outright stops every process it started, and a second `make run` refuses to start
while the first one's ports are still taken.

Each test runs the real `python -m portal.devrun` on free loopback ports with its own var/
directory (SQLite, filesystem broker) and a clean environment, so nothing of the test run's
database or broker leaks in.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 240.0  # sandbox, bootstrap, migrations and the demo, on a busy two-core machine
GONE_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def devrun_env(var_dir: Path, web_port: int, sandbox_port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(var_dir),
        "BREAKGLASS_VAR_DIR": str(var_dir),
        "BREAKGLASS_WEB_ADDRESS": f"127.0.0.1:{web_port}",
        "BREAKGLASS_SANDBOX_PORT": str(sandbox_port),
    }


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process; None once gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    state, ppid, start_time = fields[0], int(fields[1]), int(fields[19])
    return None if state in ("Z", "X") else (ppid, state, start_time)


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process under `root` (start time tells a reused pid)."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = (info[0], info[2])
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start_time) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = start_time
                frontier.append(pid)
    return found


def still_alive(processes: dict[int, int]) -> dict[int, int]:
    alive = {}
    for pid, start_time in processes.items():
        info = _stat(pid)
        if info is not None and info[2] == start_time:
            alive[pid] = start_time
    return alive


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached within {timeout}s")


class Runner:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.web_port, self.sandbox_port = free_port(), free_port()
        self.log = var_dir / "devrun.log"
        self.process: subprocess.Popen | None = None
        self.children: dict[int, int] = {}

    def start(self) -> "Runner":
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # its own group, as a terminal's foreground job
                [sys.executable, "-m", "portal.devrun"],
                cwd=ROOT,
                env=devrun_env(self.var_dir, self.web_port, self.sandbox_port),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_until_up(self) -> dict[int, int]:
        """Every process the runner started, once web, the workers (with their pools) and beat
        run."""
        assert self.process is not None

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"devrun exited early:\n{self.log.read_text()[-3000:]}")
            log = self.log.read_text(errors="replace")
            # Each worker (the main one and the grants worker) logs "ready" once its pool
            # children run; beat logs its start.
            return (
                all(line in log for line in ("the portal is up", "beat: Starting"))
                and log.count(" ready.") >= 2
            )

        wait_for(up, timeout=UP_TIMEOUT, what="devrun up")
        # The worker's pool children appear a moment after it starts: wait until they stop growing.
        counts: list[int] = []

        def settled() -> dict[int, int] | None:
            found = descendants(self.process.pid)
            counts.append(len(found))
            return found if len(counts) >= 10 and len(set(counts[-10:])) == 1 else None

        self.children = wait_for(settled, timeout=60, what="devrun's processes settled")
        return self.children

    def stop(self) -> None:
        """Whatever the test did, nothing it started survives it (even when the test fails)."""
        if self.process is None:
            return
        left = still_alive(self.children)
        if self.process.poll() is None:
            left.update(descendants(self.process.pid))
            left[self.process.pid] = 0
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=GONE_TIMEOUT)


@pytest.fixture
def runner(tmp_path) -> Iterator[Runner]:
    started = Runner(tmp_path)
    yield started
    started.stop()


def test_closing_the_terminal_stops_every_process_make_run_started(runner):
    children = runner.start().wait_until_up()
    assert len(children) >= 7, children  # sandbox, web, two workers + their pools, beat

    os.killpg(runner.process.pid, signal.SIGHUP)

    wait_for(lambda: not still_alive(children), timeout=GONE_TIMEOUT, what="every child gone")
    assert runner.process.wait(timeout=GONE_TIMEOUT) == 0


def test_killing_the_runner_outright_still_stops_every_process_it_started(runner):
    children = runner.start().wait_until_up()

    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait(timeout=GONE_TIMEOUT)

    wait_for(lambda: not still_alive(children), timeout=GONE_TIMEOUT, what="every child gone")


def test_make_run_refuses_to_start_while_its_port_is_taken(tmp_path):
    web_port, sandbox_port = free_port(), free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", web_port))
        squatter.listen()

        result = subprocess.run(
            [sys.executable, "-m", "portal.devrun"],
            cwd=ROOT,
            env=devrun_env(tmp_path, web_port, sandbox_port),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 2
    assert f"devrun: cannot start: 127.0.0.1:{web_port} already in use" in result.stderr
    assert "starting" not in result.stdout  # nothing was started
