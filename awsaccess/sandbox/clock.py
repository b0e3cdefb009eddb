"""The sandbox's notion of now: real time plus an offset that tests may move forward, so
expiry (of grants, session policies and STS credentials) is observed without waiting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC) + offset()


def offset() -> timedelta:
    with _lock:
        return _offset


def set_offset(seconds: float) -> None:
    global _offset
    with _lock:
        _offset = timedelta(seconds=seconds)
