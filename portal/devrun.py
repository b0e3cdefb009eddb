"""`make run`: the whole portal on loopback, in the foreground; Ctrl-C stops all of it.

`python -m portal.devrun manage ARGS` runs a manage.py command against that same set-up
(`make drill` uses it).

Starts the AWS sandbox and bootstraps it, migrates, seeds the demo, then runs the web server,
a Celery worker and celery beat with the embedded defaults (SQLite and a filesystem broker
under var/, no server needed).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("BREAKGLASS_VAR_DIR", ROOT / "var"))
SANDBOX_PORT = os.environ.get("BREAKGLASS_SANDBOX_PORT", "5055")
WEB_ADDRESS = os.environ.get("BREAKGLASS_WEB_ADDRESS", "127.0.0.1:8000")
STOP_TIMEOUT = 10.0


def sandbox_env() -> dict[str, str]:
    state = VAR / "sandbox"
    env = dict(os.environ)
    env.setdefault("BREAKGLASS_AWS_ENDPOINT_URL", f"http://127.0.0.1:{SANDBOX_PORT}")
    env.setdefault("BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE", str(state / "broker.json"))
    env.setdefault("BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE", str(state / "provisioner.json"))
    env.setdefault("BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE", str(state / "principals.json"))
    env.setdefault("BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS", "0")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_step(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def stop_all(processes: list[subprocess.Popen]) -> None:
    # SIGTERM to each leader lets Celery shut its pool down warmly; the group kill is the backstop.
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    env = sandbox_env()
    processes: list[subprocess.Popen] = []

    def start(name: str, args: list[str], *, log: Path | None = None) -> None:
        print(f"devrun: starting {name}" + (f" (log: {log})" if log else ""), flush=True)
        output = log.open("ab") if log else None
        processes.append(
            subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
                [sys.executable, *args], cwd=ROOT, env=env, stdout=output, stderr=output,
                start_new_session=True,
            )
        )  # fmt: skip

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
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
        start("worker", ["-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO"])
        start(
            "beat",
            ["-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
             "--schedule", str(VAR / "celerybeat-schedule")],
        )  # fmt: skip
        print(f"devrun: the portal is up on http://{WEB_ADDRESS} (Ctrl-C stops everything)")
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("devrun: a component exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndevrun: stopping", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"devrun: step failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(processes)


def manage(args: list[str]) -> int:
    """A manage.py command with the environment `make run` gives its components."""
    return subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, "manage.py", *args], cwd=ROOT, env=sandbox_env(), check=False
    ).returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["manage"]:
        sys.exit(manage(sys.argv[2:]))
    sys.exit(main())
