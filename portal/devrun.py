"""`make run`: the whole portal on loopback, in the foreground; Ctrl-C stops all of it.

`python -m portal.devrun manage ARGS` runs a manage.py command against that same set-up
(`make drill` uses it).

Starts the AWS sandbox and bootstraps it, migrates, seeds the demo, then runs the web server,
a Celery worker, a worker reserved for grants and celery beat with the embedded defaults (SQLite
and a filesystem broker under var/, no server needed), in development mode (DJANGO_DEBUG=true
unless set).

Nothing outlives it: it refuses to start while its ports are taken, stops every component on
SIGINT, SIGTERM and SIGHUP (a closed terminal), and on Linux each component is also told by the
kernel to stop when this process dies, even by SIGKILL.
"""

import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("BREAKGLASS_VAR_DIR", ROOT / "var"))
SANDBOX_PORT = os.environ.get("BREAKGLASS_SANDBOX_PORT", "5055")
WEB_ADDRESS = os.environ.get("BREAKGLASS_WEB_ADDRESS", "127.0.0.1:8000")
STOP_TIMEOUT = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stop(Exception):
    """A stop signal arrived: unwind and stop every component."""


def sandbox_env() -> dict[str, str]:
    state = VAR / "sandbox"
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "true")  # development mode is asked for here, and only here
    env.setdefault("BREAKGLASS_AWS_ENDPOINT_URL", f"http://127.0.0.1:{SANDBOX_PORT}")
    env.setdefault("BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE", str(state / "broker.json"))
    env.setdefault("BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE", str(state / "provisioner.json"))
    env.setdefault("BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE", str(state / "principals.json"))
    env.setdefault("BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS", "0")
    # The sandbox's event history lags its calls by milliseconds, not AWS's minutes.
    env.setdefault("BREAKGLASS_ACTIVITY_BACKSTOP_SETTLE_SECONDS", "5")
    # The bucket the sandbox bootstrap creates for the timeline's checkpoints (Object Lock).
    env.setdefault("BREAKGLASS_ANCHOR_BUCKET", "breakglass-sandbox-anchor")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_this_process() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when this process dies, however it
    dies (Linux only; elsewhere the signal handlers are all there is)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(1)  # running without the guarantee would risk an orphan
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def ports_taken() -> list[str]:
    """The loopback addresses `make run` needs that something is already listening on."""
    web_host, _, web_port = WEB_ADDRESS.rpartition(":")
    taken = []
    for host, port in (("127.0.0.1", int(SANDBOX_PORT)), (web_host or "127.0.0.1", int(web_port))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers do, so a closed connection's TIME_WAIT does not count as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                taken.append(f"{host}:{port}")
    return taken


def run_step(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(  # noqa: S603 (our own interpreter and modules)
        [sys.executable, *args], cwd=ROOT, env=env, check=True, preexec_fn=_die_with_this_process()
    )


def stop_all(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each leader lets Celery shut its pool down warmly; then SIGKILL to each
    component's process group takes whatever is left (a stuck leader, orphaned pool children)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _components_start(start: Callable[..., None], env: dict[str, str]) -> None:
    """The sandbox, its bootstrap, the database and demo data, then web, workers and beat."""
    VAR.mkdir(parents=True, exist_ok=True)
    start(
        "AWS sandbox",
        ["-m", "awsaccess.sandbox", "serve", "--port", SANDBOX_PORT],
        log=VAR / "sandbox.log",
    )
    endpoint = env["BREAKGLASS_AWS_ENDPOINT_URL"]
    run_step(
        ["-m", "awsaccess.sandbox", "bootstrap", "--endpoint", endpoint,
         "--state-dir", str(VAR / "sandbox")],
        env,
    )  # fmt: skip
    run_step(["manage.py", "migrate", "--no-input", "-v", "0"], env)
    run_step(["manage.py", "createcachetable"], env)  # throttle counters without Redis
    run_step(["manage.py", "seed_demo"], env)
    run_step(["manage.py", "provision_profile", "sandbox"], env)
    start("web on http://" + WEB_ADDRESS, ["manage.py", "runserver", WEB_ADDRESS, "--noreload"])
    # Every process of this one may be busy (the watch's long poll, the activity backstop, a
    # slow webhook): activations and revocations have a worker of their own. The first serves
    # them too, grants first (settings.CELERY_TASK_QUEUES), should the grants worker be down.
    start("worker", ["-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO"])
    start(
        "grants worker",
        ["-m", "celery", "-A", "portal", "worker", "--grants-only", "--concurrency", "2",
         "--hostname", "grants@%h", "--loglevel", "INFO"],
    )  # fmt: skip
    start(
        "beat",
        ["-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
         "--schedule", str(VAR / "celerybeat-schedule")],
    )  # fmt: skip
    print(
        f"devrun: the portal is up on http://{WEB_ADDRESS} (Ctrl-C stops everything)",
        flush=True,
    )


def main() -> int:
    taken = ports_taken()
    if taken:
        print(
            f"devrun: cannot start: {', '.join(taken)} already in use (is another `make run` "
            "still running? `ss -ltnp` shows who listens). Stop it, or choose other ports with "
            "BREAKGLASS_WEB_ADDRESS and BREAKGLASS_SANDBOX_PORT.",
            file=sys.stderr,
        )
        return 2
    env = sandbox_env()
    processes: list[subprocess.Popen] = []

    def start(name: str, args: list[str], *, log: Path | None = None) -> None:
        print(f"devrun: starting {name}" + (f" (log: {log})" if log else ""), flush=True)
        output = log.open("ab") if log else None
        processes.append(
            subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
                [sys.executable, *args], cwd=ROOT, env=env, stdout=output, stderr=output,
                # Its own process group, so the group kill in stop_all reaches its children;
                # the terminal's signals reach only us, and we stop everyone in order.
                start_new_session=True, preexec_fn=_die_with_this_process(),
            )
        )  # fmt: skip

    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    try:
        _components_start(start, env)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("devrun: a component exited; stopping the rest", file=sys.stderr)
        return 1
    except (Stop, KeyboardInterrupt) as stop:
        print(f"\ndevrun: stopping ({stop or 'SIGINT'})", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"devrun: step failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second signal (Ctrl-C pressed twice, a SIGHUP after a SIGTERM) must not interrupt
        # the stopping itself.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stop_all(processes)


def manage(args: list[str]) -> int:
    """A manage.py command with the environment `make run` gives its components."""
    return subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=sandbox_env(),
        check=False,
        preexec_fn=_die_with_this_process(),
    ).returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    sys.exit(main())
