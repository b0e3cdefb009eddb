import hashlib
import json
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction

from approvals.models import AccessRequest, TimelineEvent
from approvals.models.timeline import event_hash_of
from approvals.timeline import GENESIS_HASH, EventSource, timeline_append, timeline_verify
from tests.tamper import raw_sql


def test_events_chain_per_request_from_the_genesis_hash(cast):
    access_request = cast.open_request()
    second = timeline_append(access_request=access_request, code="test.second", actor=cast.alice)

    first = TimelineEvent.objects.get(request=access_request, sequence=1)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.chain == f"request:{access_request.pk}"
    assert timeline_verify().ok


def test_secrets_are_scrubbed_from_event_detail(cast):
    event = timeline_append(
        access_request=None,
        code="test.secrets",
        detail={
            "otp": "123456",
            "nested": {"SecretAccessKey": "abc", "session_token": "t"},
            "ticket": "INC-1",
        },
        source=EventSource(ip="198.51.100.7", user_agent="curl/8"),
    )

    assert event.detail == {
        "otp": "[scrubbed]",
        "nested": {"SecretAccessKey": "[scrubbed]", "session_token": "[scrubbed]"},
        "ticket": "INC-1",
    }
    assert (event.source_ip, event.user_agent) == ("198.51.100.7", "curl/8")


def test_the_orm_refuses_to_update_or_delete_events(cast):
    event = timeline_append(access_request=None, code="test.event")

    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        TimelineEvent.objects.filter(pk=event.pk).update(code="test.other")
    with pytest.raises(TypeError, match="append-only"):
        TimelineEvent.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_postgresql_refuses_raw_updates_and_deletes(cast):
    event = timeline_append(access_request=None, code="test.event")

    for sql in (
        "UPDATE approvals_timelineevent SET code = 'forged' WHERE id = %s",
        "DELETE FROM approvals_timelineevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    assert TimelineEvent.objects.get(pk=event.pk).code == "test.event"


def test_deleting_a_user_keeps_their_events_verifiable(cast):
    user = User.objects.create_user("temp")
    event = timeline_append(access_request=None, code="test.by_temp", actor=user)

    user.delete()

    event = TimelineEvent.objects.get(pk=event.pk)
    assert (event.actor_id, event.actor_name) == (None, "temp")
    assert timeline_verify().ok


def test_an_edited_event_breaks_verification_at_that_event(cast):
    access_request = cast.open_request()
    edited = timeline_append(access_request=access_request, code="approvals.request.approved")
    timeline_append(access_request=access_request, code="test.after")

    raw_sql("UPDATE approvals_timelineevent SET actor_name = 'mallory' WHERE id = %s", [edited.pk])

    result = timeline_verify()
    assert not result.ok
    assert result.broken_event_id == edited.pk
    assert "edited" in result.reason


def test_a_removed_event_breaks_verification(cast):
    access_request = cast.open_request()
    removed = timeline_append(access_request=access_request, code="approvals.signature.refused")
    after = timeline_append(access_request=access_request, code="test.after")

    raw_sql("DELETE FROM approvals_timelineevent WHERE id = %s", [removed.pk])

    result = timeline_verify()
    assert result.broken_event_id == after.pk
    assert "missing" in result.reason


def test_a_truncated_chain_breaks_verification(cast):
    access_request = cast.open_request()
    last = timeline_append(access_request=access_request, code="test.last")

    raw_sql("DELETE FROM approvals_timelineevent WHERE id = %s", [last.pk])

    result = timeline_verify()
    assert not result.ok
    assert "events removed" in result.reason


def test_an_edited_head_breaks_verification(cast):
    access_request = cast.open_request()
    timeline_append(access_request=access_request, code="test.last")

    raw_sql(
        "UPDATE approvals_timelinehead SET hash = %s WHERE chain = %s",
        ["f" * 64, f"request:{access_request.pk}"],
    )

    result = timeline_verify()
    assert result.broken_chain == f"request:{access_request.pk}"
    assert "head edited" in result.reason


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL streams the rows")
def test_a_verification_that_stops_early_leaves_the_transaction_usable(cast):
    # More rows than one streamed chunk, broken at the start: the rest is drained, not
    # cancelled (a cancel would abort the transaction the caller goes on with).
    first = timeline_append(access_request=None, code="test.first")
    for n in range(2100):
        timeline_append(access_request=None, code="test.more", detail={"n": n})
    raw_sql("UPDATE approvals_timelineevent SET code = 'forged' WHERE id = %s", [first.pk])

    with transaction.atomic():
        assert timeline_verify().broken_event_id == first.pk
        assert TimelineEvent.objects.filter(chain=first.chain).count() > 2100


def test_the_hash_is_the_published_formula_for_any_detail():
    # The README's formula as anyone would type it, against the verifier's own encoding.
    detail = {
        "z": [1, 2.5, -0.0, 1e300, None, True, {"b": "\u2028", "a": 'é"\\\n\x00'}],
        "A": "ünïcödé 🔑",
        "10": {},
        "9": [],
    }
    fields = ["request:x", 7, "a" * 64, "2026-11-22T05:00:00.000001+00:00", "mallory",
              "test.code", "success", detail, "", "agent \t"]  # fmt: skip
    published = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert event_hash_of(*fields) == hashlib.sha256(published.encode()).hexdigest()


def _backend_waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_an_append_waits_for_whoever_holds_the_request_before_it_takes_the_chain(cast):
    """One lock order for every writer, request row then chain head. A worker holds a request
    (a transition) and will append to its chain; meanwhile an alarm or an observed use appends
    to the same chain. Had the second taken the head first, it would wait at COMMIT for the
    request (its event's deferred foreign-key check) while the worker waits for the head: a
    deadlock, and one of the two changes lost."""
    access_request = cast.open_request()
    holding, release = threading.Event(), threading.Event()
    appender_pid: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with transaction.atomic():
                AccessRequest.objects.select_for_update().get(pk=access_request.pk)
                holding.set()
                release.wait(timeout=30)
                timeline_append(access_request=access_request, code="test.worker")
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    def other_writer() -> None:
        try:
            appender_pid.append(connection.cursor().connection.info.backend_pid)
            with transaction.atomic():
                timeline_append(access_request=access_request, code="test.other")
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    first = threading.Thread(target=worker)
    first.start()
    assert holding.wait(timeout=30)
    second = threading.Thread(target=other_writer)
    second.start()
    try:
        deadline = time.monotonic() + 30
        while not (appender_pid and _backend_waits_for_a_lock(appender_pid[0])):
            assert time.monotonic() < deadline, "the second writer never waited for the request"
            time.sleep(0.05)
    finally:
        release.set()
        first.join(timeout=60)
        second.join(timeout=60)

    assert not failures, failures
    codes = list(
        TimelineEvent.objects.filter(request=access_request)
        .order_by("sequence")
        .values_list("code", flat=True)
    )
    assert codes[-2:] == ["test.worker", "test.other"]
    assert timeline_verify().ok
