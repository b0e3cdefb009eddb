"""Who is acting, and the one way an administrative change is put on the record.

The acting person is the web request's user (`approvals.web.middleware`: the signed-in user, or
the API's caller once it is authenticated), or whoever a service says (`acting_as`); without one
it is a command or script: "system/command".
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
    """Who is making a change: a signed-in person, an integration, or a command / script (None).

    `user_now` is asked when a change happens, not before: the API authenticates a token inside
    its view, after the middleware has set the actor, and only then is the caller known."""

    user_now: Callable[[], Any]  # a User, the API's integration principal, None or anonymous
    source: EventSource = SYSTEM_SOURCE

    def resolved(self) -> tuple[User | None, str]:
        user = self.user_now()
        if user is None or not getattr(user, "is_authenticated", False):
            return None, COMMAND_ACTOR_NAME if user is None else "anonymous"
        # An integration key is nobody's account: on the record by name only.
        return (user if isinstance(user, User) else None), user.get_username()


_acting: ContextVar[Actor | None] = ContextVar("breakglass_acting", default=None)
_confirmed_change: ContextVar[ProfileChange | None] = ContextVar(
    "breakglass_confirmed_change", default=None
)


def acting_as(user: Any, source: EventSource = SYSTEM_SOURCE) -> AbstractContextManager[None]:
    """Changes made inside are recorded as made by `user` (None: a command or script)."""
    return acting_as_whoever(lambda: user, source)


@contextmanager
def acting_as_whoever(
    user_now: Callable[[], Any], source: EventSource = SYSTEM_SOURCE
) -> Iterator[None]:
    """Changes made inside are recorded as made by whoever `user_now()` names at each change."""
    token = _acting.set(Actor(user_now=user_now, source=source))
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
    actor = _acting.get() or Actor(user_now=lambda: None)
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
