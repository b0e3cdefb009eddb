"""Laptops for the cast: each runs the installed `breakglass` executable with its own home.

The command runs in a new session with stdin closed, as a script or the AWS CLI would run it:
there is no terminal to prompt on, so a missing TOTP code is an error, never a hang.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django_otp.oath import TOTP

from approvals.models import SealedTOTPDevice
from approvals.services.api_access import personal_token_create
from tests.conftest import Cast
from tests.processes import wait_until
from tests.worker.conftest import live  # noqa: F401

BIN = Path(sys.executable).parent
BREAKGLASS = BIN / "breakglass"
AWS = BIN / "aws"
RUN_TIMEOUT = 120


def cli_code(user) -> str:
    """A code the device will still accept when a subprocess gets round to sending it.

    tests.conftest.fresh_code may give the oldest step still accepted, which can lapse during a
    subprocess's start-up; this gives the step at the centre of the device's window (or the next
    one when the centre was used), good for at least one more step.
    """
    for _ in range(3):
        device = SealedTOTPDevice.objects.get(user=user)
        centre = int((time.time() - device.t0) // device.step) + device.drift
        step = max(device.last_t + 1, centre)
        if step <= centre + min(device.tolerance, 1):
            totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
            totp.time = device.t0 + step * device.step
            return f"{totp.token():0{device.digits}d}"
        time.sleep(device.seconds_to_next_step() + 0.05)
    raise RuntimeError(f"no usable TOTP code for {user} after waiting")


def installed(executable: Path) -> Path:
    if not executable.exists():
        raise AssertionError(f"{executable} is not installed; run `make venv`")
    return executable


@dataclass
class Laptop:
    """One person's machine: a home directory with its own config and cache."""

    name: str
    home: Path
    token: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.home / ".config" / "breakglass" / "config.toml"

    @property
    def cache_dir(self) -> Path:
        return self.home / ".cache" / "breakglass"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "BREAKGLASS_", "XDG_"))
        }
        env.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "AWS_CONFIG_FILE": str(self.home / ".aws" / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.home / ".aws" / "credentials"),
                "BREAKGLASS_POLL_SECONDS": "0.3",
                **self.extra_env,
                **overrides,
            }
        )
        return env

    def run(self, *args: str, timeout: float = RUN_TIMEOUT, **env: str):
        return subprocess.run(
            [str(installed(BREAKGLASS)), *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        done = self.run(*args, **env)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str, **env: str):
        return json.loads(self.ok(*args, "--json", **env).stdout)


def expect_error(done: subprocess.CompletedProcess, exit_code: int, code: str) -> str:
    """An expected failure: the exit code, one line `breakglass: code: message`, no traceback."""
    assert done.returncode == exit_code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines, done
    assert lines[-1].startswith(f"breakglass: {code}: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[-1]


@dataclass
class Laptops:
    rita: Laptop
    alice: Laptop
    bob: Laptop

    def all(self) -> list[Laptop]:
        return [self.rita, self.alice, self.bob]


def laptop_for(user, tmp_path: Path, url: str) -> Laptop:
    laptop = Laptop(
        name=user.username,
        home=tmp_path / f"home-{user.username}",
        token=personal_token_create(user=user, name="laptop"),
    )
    laptop.home.mkdir()
    configured = laptop.ok("configure", "--url", url, "--token", laptop.token)
    assert f"for {user.username}" in configured.stdout
    assert laptop.token not in configured.stdout + configured.stderr
    return laptop


@pytest.fixture
def laptops(cast: Cast, live_server, tmp_path) -> Laptops:
    return Laptops(
        rita=laptop_for(cast.requester, tmp_path, live_server.url),
        alice=laptop_for(cast.alice, tmp_path, live_server.url),
        bob=laptop_for(cast.bob, tmp_path, live_server.url),
    )


def dead_port_url() -> str:
    """A loopback URL nobody listens on: bind a port, then close it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Follower:
    """A `breakglass` command left running (e.g. `wait`), its stderr read line by line."""

    def __init__(self, laptop: Laptop, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(installed(BREAKGLASS)), *args],
            env=laptop.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str, *, timeout: float = 60) -> str:
        def seen() -> str | None:
            return next((line for line in self.lines if text in line), None)

        return wait_until(seen, timeout=timeout, interval=0.1, what=f"{text!r} on stderr")

    def finish(self, *, timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
        # Not communicate(): it would read stderr too, away from the reader thread.
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.stop()
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()  # small: a request id or one JSON object
        self.reader.join(timeout=10)
        return self.process.returncode, stdout, "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
