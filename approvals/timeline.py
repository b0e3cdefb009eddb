"""The tamper-evident timeline: append one event, verify every chain."""

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from approvals.models import AccessRequest, TimelineEvent, TimelineHead, event_hash
from approvals.models.timeline import event_hash_of
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
        if access_request is not None:
            _request_lock(access_request.pk)
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


_REQUEST_LOCK_SQL = f"SELECT 1 FROM {AccessRequest._meta.db_table} WHERE id = %s FOR UPDATE"  # noqa: S608


def _request_lock(access_request_id: UUID) -> None:
    """Lock the request's row before its chain's head: one lock order for every writer.

    The event's foreign key is checked at COMMIT, which takes a share lock on the request row.
    A writer that appended without holding it would then wait, holding the head, for whoever
    holds the request (a revocation, a transition) while that one waits for the head: a deadlock.
    """
    if not connection.features.has_select_for_update:  # SQLite locks the whole database
        return
    with connection.cursor() as cursor:
        cursor.execute(_REQUEST_LOCK_SQL, [access_request_id])


def _head_lock(chain: str) -> tuple[int, str]:
    """Create the chain's head if new, lock it and read it, in one statement.

    The row lock (taken by the upsert on PostgreSQL, by the write lock on SQLite) serialises
    appends to one chain until the transaction ends, so sequences never collide.
    """
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_LOCK_SQL, [chain, GENESIS_HASH])
        sequence, digest = cursor.fetchone()
    return sequence, digest


# chain -> (sequence, hash): a point of each chain someone vouches for (a signed checkpoint, or
# what an earlier verification confirmed).
Pins = Mapping[str, tuple[int, str]]
_CHUNK = 500


@dataclass(frozen=True)
class Verification:
    events_checked: int
    broken_event_id: int | None = None
    broken_chain: str | None = None
    broken_sequence: int | None = None
    reason: str = ""
    chains_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.reason


_COLUMNS = (
    "id, chain, sequence, prev_hash, hash, created_at, actor_name, code, outcome, detail, "
    "source_ip, user_agent"
)
_TABLE = TimelineEvent._meta.db_table
Row = tuple[int, str, int, str, str, datetime, str, str, str, Any, str | None, str]


def _event_rows(where: str = "", params: Sequence[Any] = ()) -> Iterator[Row]:
    """Events in (chain, sequence) order, read in chunks. PostgreSQL through a server-side cursor
    (a tenth of the ORM's per-row cost: the full verification reads millions); SQLite through the
    ORM, which turns its text columns into datetimes and dicts."""
    sql = f"SELECT {_COLUMNS} FROM {_TABLE} {where} ORDER BY chain, sequence"  # noqa: S608
    if connection.vendor != "postgresql":
        rows = TimelineEvent.objects.raw(sql, params)
        for event in rows.iterator():
            yield (
                event.id, event.chain, event.sequence, event.prev_hash, event.hash,
                event.created_at, event.actor_name, event.code, event.outcome, event.detail,
                event.source_ip, event.user_agent,
            )  # fmt: skip
        return
    loads = json.loads
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(5000):
            for row in batch:
                detail = row[9]
                yield (*row[:9], loads(detail) if isinstance(detail, str) else detail, *row[10:])


def _walk(rows: Iterable[Row], starts: Pins, pins: Pins) -> tuple[Verification, dict]:
    """Recompute each event's hash and link, chain after chain, from `starts` (else genesis),
    checking every pinned event on the way → (the first problem or a clean result, chain ->
    (sequence, hash) of the last event seen)."""
    reached: dict[str, tuple[int, str]] = {}
    checked = 0
    current: str | None = None
    expected_sequence, expected_prev, pin_sequence, pin_hash = 1, GENESIS_HASH, 0, ""
    for row in rows:
        event_id, chain, sequence, prev_hash, stored_hash = row[:5]
        if chain != current:
            if current is not None:
                reached[current] = (expected_sequence - 1, expected_prev)
            current = chain
            start_sequence, expected_prev = starts.get(chain, (0, GENESIS_HASH))
            expected_sequence = start_sequence + 1
            pin_sequence, pin_hash = pins.get(chain, (0, ""))
        problem = ""
        if sequence != expected_sequence:
            problem = f"expected sequence {expected_sequence}, found {sequence} (event missing)"
        elif prev_hash != expected_prev:
            problem = "previous-hash link does not match the event before it"
        elif stored_hash != event_hash_of(
            chain, sequence, prev_hash, row[5].isoformat(timespec="microseconds"), *row[6:]
        ):
            problem = "content does not match its hash (edited)"
        elif sequence == pin_sequence and stored_hash != pin_hash:
            problem = "event differs from the signed checkpoint (rewritten and re-hashed)"
        if problem:
            return Verification(checked, event_id, chain, sequence, problem), reached
        checked += 1
        expected_sequence, expected_prev = sequence + 1, stored_hash
    if current is not None:
        reached[current] = (expected_sequence - 1, expected_prev)
    return Verification(checked, chains_checked=len(reached)), reached


def _ends_check(
    result: Verification, reached: dict, heads: dict, pins: Pins, starts: Pins
) -> Verification:
    """Every chain must end where its head says, and reach every point a checkpoint vouches for."""
    missing = [
        (chain, sequence)
        for chain, (sequence, _) in pins.items()
        if reached.get(chain, starts.get(chain, (0, "")))[0] < sequence
    ]
    if missing:
        chain, sequence = sorted(missing)[0]
        last = reached.get(chain, starts.get(chain, (0, "")))[0]
        reason = (
            f"chain ends at {last} but the signed checkpoint vouches for {sequence} events "
            "(events or the whole chain deleted)"
        )
        if len(missing) > 1:
            reason += f"; {len(missing)} of the checkpoint's {len(pins)} chains are short"
        return Verification(result.events_checked, None, chain, last + 1, reason)
    for chain, (sequence, _) in sorted(heads.items()):
        last = reached.get(chain, starts.get(chain, (0, "")))[0]
        if last != sequence:
            return Verification(
                result.events_checked,
                None,
                chain,
                last + 1,
                f"chain ends at {last} but its head records {sequence} (events removed)",
            )
    return result


def _heads(chain: str | None = None) -> dict[str, tuple[int, str]]:
    heads = TimelineHead.objects.filter(**({"chain": chain} if chain else {}))
    rows = heads.values_list("chain", "sequence", "hash")
    return {name: (sequence, digest) for name, sequence, digest in rows}


def timeline_verify(*, chain: str | None = None, pins: Pins | None = None) -> Verification:
    """Recompute every hash in order; report the first event that does not fit its chain, a
    chain that does not end at its head, or one that falls short of (or differs from) `pins`,
    the heads a signed checkpoint vouches for."""
    pins = {c: p for c, p in (pins or {}).items() if chain is None or c == chain}
    where, params = ("WHERE chain = %s", [chain]) if chain else ("", [])
    result, reached = _walk(_event_rows(where, params), {}, pins)
    if not result.ok:
        return result
    return _ends_check(result, reached, _heads(chain), pins, {})


def pins_check(pins: Pins) -> Verification:
    """Each pinned event is still there with the pinned hash (one indexed lookup per chain)."""
    ordered = sorted(pins.items())
    missing, changed = [], []
    chunk_size = len(ordered) or 1 if connection.vendor == "postgresql" else _CHUNK
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        found = _pinned_hashes(chunk)
        for chain, (sequence, digest) in chunk:
            if chain not in found:
                missing.append((chain, sequence))
            elif found[chain] != digest:
                changed.append((chain, sequence))
    if changed:
        chain, sequence = changed[0]
        return Verification(
            0, None, chain, sequence, "event differs from the signed checkpoint (rewritten)"
        )
    if missing:
        chain, sequence = missing[0]
        reason = "event the signed checkpoint vouches for is missing (deleted)"
        if len(missing) > 1:
            reason += f"; {len(missing)} of its {len(pins)} chains are missing or short"
        return Verification(0, None, chain, sequence, reason)
    return Verification(0, chains_checked=len(pins))


def _pinned_hashes(pins: list[tuple[str, tuple[int, str]]]) -> dict[str, str]:
    """chain -> hash of the event at each pinned sequence (absent: no such event)."""
    chains = [chain for chain, _ in pins]
    sequences = [sequence for _, (sequence, _) in pins]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement whatever the count: an index lookup per chain.
            cursor.execute(
                f"SELECT e.chain, e.hash FROM unnest(%s::text[], %s::bigint[]) AS p(chain, seq) "  # noqa: S608
                f"JOIN {_TABLE} e ON e.chain = p.chain AND e.sequence = p.seq",
                [chains, sequences],
            )
        else:
            values = ", ".join(["(%s, %s)"] * len(pins))
            cursor.execute(
                f"SELECT chain, hash FROM {_TABLE} "  # noqa: S608
                f"WHERE (chain, sequence) IN (VALUES {values})",
                [item for pair in zip(chains, sequences, strict=True) for item in pair],
            )
        return dict(cursor.fetchall())


def timeline_verify_since(*, verified: Pins, pins: Pins | None = None) -> Verification:
    """Incremental: what was `verified` is still there unchanged (pinned events and heads), and
    every event appended after it is recomputed, linked to it, and meets `pins`."""
    pins = pins or {}
    heads = _heads()
    problem = pins_check(verified)
    if not problem.ok:
        return problem
    moved = sorted(
        (chain, verified.get(chain, (0, GENESIS_HASH)))
        for chain, head in heads.items()
        if verified.get(chain) != head
    )
    starts = dict(moved)
    reached: dict[str, tuple[int, str]] = {}
    checked = 0
    for start in range(0, len(moved), _CHUNK):
        chunk = moved[start : start + _CHUNK]
        where = "WHERE " + " OR ".join(["(chain = %s AND sequence > %s)"] * len(chunk))
        params = [item for chain, (sequence, _) in chunk for item in (chain, sequence)]
        result, part = _walk(_event_rows(where, params), starts, pins)
        checked += result.events_checked
        if not result.ok:
            return Verification(checked, *astuple(result)[1:])
        reached.update(part)
    untouched = {c: p for c, p in verified.items() if c not in starts}
    result = Verification(checked, chains_checked=len(heads))
    return _ends_check(result, reached, heads, pins, {**untouched, **starts})
