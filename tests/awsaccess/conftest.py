from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from awsaccess.engine import AccessEngine


@pytest.fixture
def engine(aws_sandbox) -> AccessEngine:
    # The sandbox has no propagation delay; a short wait keeps denial tests fast.
    return AccessEngine(aws_sandbox.broker, propagation_timeout=0.5)


@pytest.fixture
def profile(aws_sandbox):
    """A fresh role + principal per test, so tests never see each other's grants."""
    return aws_sandbox.new_target()


class SandboxClock:
    def __init__(self, sandbox) -> None:
        self._sandbox = sandbox
        self.offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta
        self._sandbox.set_clock_offset(self.offset.total_seconds())

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def sandbox_clock(aws_sandbox) -> Iterator[SandboxClock]:
    clock = SandboxClock(aws_sandbox)
    try:
        yield clock
    finally:
        aws_sandbox.set_clock_offset(0)
