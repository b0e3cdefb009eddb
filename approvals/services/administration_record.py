"""Who is acting, and the one way an administrative change is put on the record.

The acting person is the signed-in user of the web request (`approvals.web.middleware`), or
whoever a service says (`acting_as`); without one it is a command or script: "system/command".
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User

from approvals.models import ProfileChange, TimelineEvent
from approvals.services.alarms import alarm_open
from approvals.timeline import SYSTEM_SOURCE, EventSource, timeline_append

COMMAND_ACTOR_NAME = "system/command"
ALARM_KIND_PREFIX = "admin_"


@dataclass(frozen=True)
class Actor:
    """Who is making a change: a signed-in person, or a command / script (user None)."""

    user: Any  # a User, or the web request's lazy user, resolved only when a change happens
    source: EventSource = SYSTEM_SOURCE

    def resolved(self) -> tuple[User | None, str]:
        user = self.user
        if user is None or not getattr(user, "is_authenticated", False):
            return None, COMMAND_ACTOR_NAME if user is None else "anonymous"
        return user, user.get_username()


_acting: ContextVar[Actor | None] = ContextVar("breakglass_acting", default=None)
_confirmed_change: ContextVar[ProfileChange | None] = ContextVar(
    "breakglass_confirmed_change", default=None
)


@contextmanager
def acting_as(user: Any, source: EventSource = SYSTEM_SOURCE) -> Iterator[None]:
    """Changes made inside are recorded as made by `user` (None: a command or script)."""
    token = _acting.set(Actor(user=user, source=source))
    try:
        yield
    finally:
        _acting.reset(token)


@contextmanager
def confirmed_change_applying(change: ProfileChange) -> Iterator[None]:
    """The one way past the two-person guard: a change a second administrator confirmed."""
    token = _confirmed_change.set(change)
    try:
        yield
    finally:
        _confirmed_change.reset(token)


def confirmed_change() -> ProfileChange | None:
    return _confirmed_change.get()


def acting_user() -> User | None:
    """The person making the change now (None: a command or script)."""
    actor = _acting.get()
    return actor.resolved()[0] if actor is not None else None


def administration_record(
    code: str, detail: dict[str, Any], alarm_title: str = "", alarm_kind: str = ""
) -> None:
    """One administration event on the system chain, and an alarm when it changes who may
    approve or what a profile grants."""
    actor = _acting.get() or Actor(user=None)
    user, name = actor.resolved()
    event: TimelineEvent = timeline_append(
        access_request=None,
        code=code,
        actor=user,
        actor_name=name,
        detail={"by": name, **detail},
        source=actor.source,
    )
    if alarm_title:
        alarm_open(
            kind=f"{ALARM_KIND_PREFIX}{alarm_kind}",
            title=f"{alarm_title} (by {name})",
            dedup_key=f"admin:{event.chain}:{event.sequence}",
            detail={"by": name, "event": code, **detail},
        )
