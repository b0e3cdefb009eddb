"""The tamper-evident timeline: append one event, verify every chain."""

import gc
import json
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

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
        head_sequence, head_hash = _head_lock(chain, access_request)
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


# The table names come from our own models, never from input.
_HEAD_UPSERT_SQL = (
    f"INSERT INTO {TimelineHead._meta.db_table} (chain, sequence, hash) "
    "{rows} ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain RETURNING sequence, hash"
)
_HEAD_LOCK_SQL = _HEAD_UPSERT_SQL.format(rows="VALUES (%s, 0, %s)")
# The request's row is locked as the upsert reads it, before the head: one statement, one
# round trip, the same lock order.
_REQUEST_AND_HEAD_LOCK_SQL = (
    f"WITH locked AS (SELECT id FROM {AccessRequest._meta.db_table} "  # noqa: S608
    "WHERE id = %s FOR UPDATE) " + _HEAD_UPSERT_SQL.format(rows="SELECT %s, 0, %s FROM locked")
)


def _head_lock(chain: str, access_request: AccessRequest | None) -> tuple[int, str]:
    """Create the chain's head if new, lock it and read it, in one statement.

    The row lock (taken by the upsert on PostgreSQL, by the write lock on SQLite) serialises
    appends to one chain until the transaction ends, so sequences never collide.

    A request's row is locked first, in the same statement: one lock order for every writer.
    The event's foreign key is checked at COMMIT, which takes a share lock on the request row. A
    writer that appended without holding it would then wait, holding the head, for whoever holds
    the request (a revocation, a transition) while that one waits for the head: a deadlock.
    SQLite locks the whole database instead.
    """
    with connection.cursor() as cursor:
        if access_request is not None and connection.features.has_select_for_update:
            cursor.execute(_REQUEST_AND_HEAD_LOCK_SQL, [access_request.pk, chain, GENESIS_HASH])
        else:
            cursor.execute(_HEAD_LOCK_SQL, [chain, GENESIS_HASH])
        row = cursor.fetchone()
    if row is None:
        raise AccessRequest.DoesNotExist(f"request {access_request.pk} is gone")  # type: ignore[union-attr]
    return row[0], row[1]


# chain -> (sequence, hash): a point of each chain someone vouches for (a signed checkpoint, or
# what an earlier verification confirmed).
Pins = Mapping[str, tuple[int, str]]
_CHUNK = 500  # SQLite: chains per statement
_STREAM_ROWS = 2000


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


_TABLE = TimelineEvent._meta.db_table
_HEADS = TimelineHead._meta.db_table
_EVENTS = f"{_TABLE} e"
# id, chain, sequence, prev_hash, hash, then the rest of the formula's fields in its order: the
# time as the formula's text, the detail as JSON text, the address as text (or None).
Row = tuple[int, str, int, str, str, str, str, str, str, str, str | None, str]
_COLUMNS = (
    "e.id, e.chain, e.sequence, e.prev_hash, e.hash, e.created_at, e.actor_name, e.code, "
    "e.outcome, e.detail, e.source_ip, e.user_agent"
)
# PostgreSQL writes the time as the text the formula hashes (a datetime per row cost more than
# the hash); the detail and the address come as their text (Django's loaders for jsonb, inet).
_PG_COLUMNS = (
    "e.id, e.chain, e.sequence, e.prev_hash, e.hash, "
    "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), "
    "e.actor_name, e.code, e.outcome, e.detail, e.source_ip, e.user_agent"
)


def _event_rows(source: str = _EVENTS, params: Sequence[Any] = ()) -> Generator[Row]:
    """Events in (chain, sequence) order, from `source` (a FROM clause naming them `e`).

    PostgreSQL streams one statement's rows as it produces them (libpq's chunked mode), so the
    database reads and formats while Python hashes, with no round trip per chunk."""
    if connection.vendor != "postgresql":
        yield from _sqlite_rows(source, params)
        return
    sql = f"SELECT {_PG_COLUMNS} FROM {source} ORDER BY e.chain, e.sequence"  # noqa: S608
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        stream = cursor.stream(sql, params, size=_STREAM_ROWS)
        try:
            # Not `yield from`: closing this generator must not close (cancel) the stream.
            for row in stream:  # noqa: UP028
                yield row
        finally:
            # A walk that stops early drains the rest: the cancel psycopg would send instead
            # aborts the caller's transaction.
            for _ in stream:
                pass


def _sqlite_rows(source: str, params: Sequence[Any]) -> Generator[Row]:
    """SQLite's rows read raw (no model per row): Django keeps the time there as naive UTC, which
    its converter turns into a datetime, and the detail as JSON text."""
    sql = f"SELECT {_COLUMNS} FROM {source} ORDER BY e.chain, e.sequence"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(_STREAM_ROWS):
            for row in batch:
                created = row[5].isoformat(timespec="microseconds") + "+00:00"
                yield (*row[:5], created, *row[6:])


def _walk(rows: Iterable[Row], starts: Pins, pins: Pins) -> tuple[Verification, dict]:
    """Recompute each event's hash and link, chain after chain, from `starts` (else genesis),
    checking every pinned event on the way → (the first problem or a clean result, chain ->
    (sequence, hash) of the last event seen)."""
    reached: dict[str, tuple[int, str]] = {}
    checked = 0
    current: str | None = None
    expected_sequence, expected_prev, pin_sequence, pin_hash = 1, GENESIS_HASH, 0, ""
    loads, hash_of = json.loads, event_hash_of
    for (
        event_id,
        chain,
        sequence,
        prev_hash,
        stored_hash,
        created,
        actor,
        code,
        outcome,
        detail,
        ip,
        agent,
    ) in rows:
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
        elif stored_hash != hash_of(
            chain, sequence, prev_hash, created, actor, code, outcome, loads(detail), ip, agent
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
    result: Verification, reached: dict, heads: Pins, pins: Pins, starts: Pins
) -> Verification:
    """Every chain must end where its head says (sequence and hash), and reach every point a
    checkpoint vouches for."""

    def last(chain: str) -> tuple[int, str]:
        return reached.get(chain, starts.get(chain, (0, GENESIS_HASH)))

    missing = [
        (chain, sequence) for chain, (sequence, _) in pins.items() if last(chain)[0] < sequence
    ]
    if missing:
        chain, sequence = sorted(missing)[0]
        reason = (
            f"chain ends at {last(chain)[0]} but the signed checkpoint vouches for {sequence} "
            "events (events or the whole chain deleted)"
        )
        if len(missing) > 1:
            reason += f"; {len(missing)} of the checkpoint's {len(pins)} chains are short"
        return Verification(result.events_checked, None, chain, last(chain)[0] + 1, reason)
    for chain, head in sorted(heads.items()):
        end = last(chain)
        if end[0] != head[0]:
            reason = f"chain ends at {end[0]} but its head records {head[0]} (events removed)"
        elif end[1] != head[1]:
            reason = f"chain ends at {end[0]} but its head records another hash (head edited)"
        else:
            continue
        return Verification(result.events_checked, None, chain, end[0] + 1, reason)
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
    source, params = (f"{_EVENTS} WHERE e.chain = %s", [chain]) if chain else (_EVENTS, [])
    with snapshot(), _collector_paused():
        # The stream holds the connection until closed: nothing else may query inside.
        with closing(_event_rows(source, params)) as rows:
            result, reached = _walk(rows, {}, pins)
        heads = _heads(chain)
    if not result.ok:
        return result
    return _ends_check(result, reached, heads, pins, {})


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The walk allocates a few objects per row and frees them at once (no cycles): the cyclic
    collector finds nothing, yet a full pass of it over the process's heap costs tens of ms."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def snapshot() -> Iterator[None]:
    """One consistent view of events and heads while appends go on (PostgreSQL REPEATABLE READ;
    SQLite's transactions already are one)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(savepoint=False):
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


# One row per chain whose pinned event or head is not exactly what was verified, or that is new:
# (chain, pinned sequence, pinned hash, hash of the event found there, head sequence, head hash).
Difference = tuple[str, int | None, str | None, str | None, int | None, str | None]

# The event at each pin is looked up on its own (a correlated subquery, kept one by OFFSET 0): a
# join would let the planner hash the whole table. Heads: one hash join.
_DIFFERENCES_SQL = """
SELECT * FROM (
    SELECT coalesce(p.chain, h.chain), p.seq, p.hash,
           (SELECT e.hash FROM {events} e WHERE e.chain = p.chain AND e.sequence = p.seq),
           h.sequence, h.hash
    FROM unnest({chains}, {sequences}, {hashes}) AS p(chain, seq, hash)
    FULL JOIN {heads} h ON h.chain = p.chain
    OFFSET 0
) AS d(chain, pin_sequence, pin_hash, event_hash, head_sequence, head_hash)
WHERE pin_sequence IS NULL OR head_sequence IS NULL OR event_hash IS DISTINCT FROM pin_hash
   OR head_sequence <> pin_sequence OR head_hash <> pin_hash
"""


def _pg_array(values: Sequence[str | int], kind: str) -> tuple[str, Any]:
    """(SQL, parameter) for a `kind`[] of `values`: one joined string that PostgreSQL splits
    (psycopg adapts a list item by item: 10,000 pins took longer than the whole query), or the
    list itself when an item holds the separator."""
    joined = "\n".join(map(str, values))
    if joined.count("\n") == len(values) - 1 and (joined or not values):
        return f"string_to_array(%s, E'\\n')::{kind}[]", joined
    return f"%s::{kind}[]", list(values)


def _differences(verified: Pins) -> list[Difference]:
    """Compare each verified pin with its event and its chain's head. PostgreSQL in one
    statement (an index lookup per chain; only the differences come back)."""
    ordered = sorted(verified.items())
    if connection.vendor == "postgresql":
        chains, chains_param = _pg_array([c for c, _ in ordered], "text")
        sequences, sequences_param = _pg_array([s for _, (s, _) in ordered], "bigint")
        hashes, hashes_param = _pg_array([h for _, (_, h) in ordered], "text")
        sql = _DIFFERENCES_SQL.format(
            events=_TABLE, heads=_HEADS, chains=chains, sequences=sequences, hashes=hashes
        )
        with connection.cursor() as cursor:
            # The plan costs 10,000 lookups as heavy work: JIT would compile for longer than they
            # take (a transaction's setting: snapshot() runs this in one).
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(sql, [chains_param, sequences_param, hashes_param])
            return cursor.fetchall()
    heads, found = _heads(), {}
    for start in range(0, len(ordered), _CHUNK):
        found.update(_pinned_hashes(ordered[start : start + _CHUNK]))
    differences: list[Difference] = []
    for chain, (sequence, digest) in ordered:
        head = heads.get(chain)
        if found.get(chain) != digest or head != (sequence, digest):
            differences.append((chain, sequence, digest, found.get(chain), *(head or (None, None))))
    differences += [(c, None, None, None, *h) for c, h in heads.items() if c not in verified]
    return differences


def _pinned_hashes(pins: list[tuple[str, tuple[int, str]]]) -> dict[str, str]:
    """SQLite: chain -> hash of the event at each pinned sequence (absent: no such event)."""
    values = ", ".join(["(%s, %s)"] * len(pins))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT chain, hash FROM {_TABLE} WHERE (chain, sequence) IN (VALUES {values})",  # noqa: S608
            [item for chain, (sequence, _) in pins for item in (chain, sequence)],
        )
        return dict(cursor.fetchall())


def _pins_problem(differences: list[Difference], count: int) -> Verification | None:
    """A verified event that is gone or no longer has the verified hash."""
    changed = [
        (d[0], d[1]) for d in differences if d[1] is not None and d[3] is not None and d[3] != d[2]
    ]
    if changed:
        chain, sequence = min(changed)
        return Verification(
            0, None, chain, sequence, "event differs from the signed checkpoint (rewritten)"
        )
    missing = [(d[0], d[1]) for d in differences if d[1] is not None and d[3] is None]
    if missing:
        chain, sequence = min(missing)
        reason = "event the signed checkpoint vouches for is missing (deleted)"
        if len(missing) > 1:
            reason += f"; {len(missing)} of its {count} chains are missing or short"
        return Verification(0, None, chain, sequence, reason)
    return None


def timeline_verify_since(*, verified: Pins, pins: Pins | None = None) -> Verification:
    """Incremental: what was `verified` is still there unchanged (pinned events and heads), and
    every event appended after it is recomputed, linked to it, and meets `pins`."""
    pins = pins or {}
    with snapshot(), _collector_paused():
        differences = _differences(verified)
        problem = _pins_problem(differences, len(verified))
        if problem is not None:
            return problem
        heads = {d[0]: (d[4], d[5]) for d in differences if d[4] is not None and d[5] is not None}
        # Chains that moved (or are new), and those a newer checkpoint vouches further for.
        moved = set(heads) | {c for c, pin in pins.items() if verified.get(c) != pin}
        starts = {chain: verified.get(chain, (0, GENESIS_HASH)) for chain in sorted(moved)}
        with closing(_rows_after(starts)) as rows:
            result, reached = _walk(rows, starts, pins)
    if not result.ok:
        return result
    new_chains = sum(1 for d in differences if d[1] is None)
    result = Verification(result.events_checked, chains_checked=len(verified) + new_chains)
    return _ends_check(result, reached, heads, pins, {**verified, **starts})


def _rows_after(starts: Pins) -> Generator[Row]:
    """The events of each chain in `starts` after its start, in (chain, sequence) order."""
    if not starts:
        return
    if connection.vendor == "postgresql":
        # Each chain's range on its own (LATERAL, OFFSET 0): never a scan of the whole table.
        chains, chains_param = _pg_array(list(starts), "text")
        after, after_param = _pg_array([sequence for sequence, _ in starts.values()], "bigint")
        source = (
            f"unnest({chains}, {after}) AS s(chain, after) CROSS JOIN LATERAL "  # noqa: S608
            f"(SELECT * FROM {_TABLE} x WHERE x.chain = s.chain AND x.sequence > s.after "
            "OFFSET 0) AS e"
        )
        yield from _event_rows(source, [chains_param, after_param])
        return
    ordered = list(starts.items())
    for first in range(0, len(ordered), _CHUNK):
        part = ordered[first : first + _CHUNK]
        where = " OR ".join(["(e.chain = %s AND e.sequence > %s)"] * len(part))
        yield from _event_rows(
            f"{_EVENTS} WHERE {where}",
            [item for chain, (after, _) in part for item in (chain, after)],
        )
