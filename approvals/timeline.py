"""The tamper-evident timeline: append one event, verify every chain."""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from approvals.models import AccessRequest, TimelineEvent, TimelineHead, event_hash
from approvals.scrubbing import scrub

GENESIS_HASH = "0" * 64
SYSTEM_CHAIN = "system"


@dataclass(frozen=True)
class EventSource:
    """Where an action came from; recorded on the timeline."""

    ip: str | None = None
    user_agent: str = ""


SYSTEM_SOURCE = EventSource()


def chain_for(access_request: AccessRequest | None) -> str:
    return f"request:{access_request.pk}" if access_request is not None else SYSTEM_CHAIN


def timeline_append(
    *,
    access_request: AccessRequest | None,
    code: str,
    actor=None,
    actor_name: str | None = None,
    outcome: str = "success",
    detail: dict | None = None,
    source: EventSource = SYSTEM_SOURCE,
) -> TimelineEvent:
    """Append an event to the request's chain (or the system chain) in the caller's transaction."""
    chain = chain_for(access_request)
    name = actor_name or (actor.get_username() if actor is not None else "system")
    clean_detail = scrub(detail or {})
    user_agent = (source.user_agent or "")[:300]
    # No savepoint: a failed append must abort the change it records, and a savepoint would
    # cost two round trips on every event.
    with transaction.atomic(savepoint=False):
        head_sequence, head_hash = _head_lock(chain)
        event = TimelineEvent(
            chain=chain,
            sequence=head_sequence + 1,
            request=access_request,
            created_at=timezone.now(),
            actor=actor,
            actor_name=name,
            code=code,
            outcome=outcome,
            detail=clean_detail,
            source_ip=source.ip,
            user_agent=user_agent,
            prev_hash=head_hash,
        )
        event.hash = event_hash(
            chain=chain,
            sequence=event.sequence,
            prev_hash=event.prev_hash,
            created_at=event.created_at,
            actor_name=name,
            code=code,
            outcome=outcome,
            detail=clean_detail,
            source_ip=source.ip,
            user_agent=user_agent,
        )
        event.save()  # an AFTER INSERT trigger advances the chain's head (migration 0007)
    return event


# The table name comes from our own model, never from input.
_HEAD_LOCK_SQL = (
    f"INSERT INTO {TimelineHead._meta.db_table} (chain, sequence, hash) "  # noqa: S608
    "VALUES (%s, 0, %s) ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain "
    "RETURNING sequence, hash"
)


def _head_lock(chain: str) -> tuple[int, str]:
    """Create the chain's head if new, lock it and read it, in one statement.

    The row lock (taken by the upsert on PostgreSQL, by the write lock on SQLite) serialises
    appends to one chain until the transaction ends, so sequences never collide.
    """
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_LOCK_SQL, [chain, GENESIS_HASH])
        sequence, digest = cursor.fetchone()
    return sequence, digest


@dataclass(frozen=True)
class Verification:
    events_checked: int
    broken_event_id: int | None = None
    broken_chain: str | None = None
    broken_sequence: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


_VERIFY_FIELDS = (
    "id",
    "chain",
    "sequence",
    "prev_hash",
    "hash",
    "created_at",
    "actor_name",
    "code",
    "outcome",
    "detail",
    "source_ip",
    "user_agent",
)


def timeline_verify(*, chain: str | None = None) -> Verification:
    """Recompute every hash in order; report the first event that does not fit its chain."""
    heads = dict(
        TimelineHead.objects.filter(**({"chain": chain} if chain else {})).values_list(
            "chain", "sequence"
        )
    )
    rows = TimelineEvent.objects.order_by("chain", "sequence").values_list(*_VERIFY_FIELDS)
    if chain:
        rows = rows.filter(chain=chain)
    checked = 0
    current_chain: str | None = None
    expected_sequence = 1
    expected_prev = GENESIS_HASH
    seen_chains: dict[str, int] = {}

    for row in rows.iterator(chunk_size=5000):
        event_id, event_chain, sequence, prev_hash, stored_hash = row[:5]
        if event_chain != current_chain:
            current_chain, expected_sequence, expected_prev = event_chain, 1, GENESIS_HASH

        problem = ""
        if sequence != expected_sequence:
            problem = f"expected sequence {expected_sequence}, found {sequence} (event missing)"
        elif prev_hash != expected_prev:
            problem = "previous-hash link does not match the event before it"
        recomputed = event_hash(
            chain=event_chain,
            sequence=sequence,
            prev_hash=prev_hash,
            created_at=row[5],
            actor_name=row[6],
            code=row[7],
            outcome=row[8],
            detail=row[9],
            source_ip=row[10],
            user_agent=row[11],
        )
        if not problem and recomputed != stored_hash:
            problem = "content does not match its hash (edited)"
        if problem:
            return Verification(checked, event_id, event_chain, sequence, problem)
        checked += 1
        seen_chains[event_chain] = sequence
        expected_sequence, expected_prev = sequence + 1, stored_hash

    for head_chain, head_sequence in heads.items():
        last_seen = seen_chains.get(head_chain, 0)
        if last_seen != head_sequence:
            return Verification(
                checked,
                None,
                head_chain,
                last_seen + 1,
                f"chain ends at {last_seen} but its head records {head_sequence} (events removed)",
            )
    return Verification(checked)
