"""The watcher stores what it receives in batches (session calls together, one seal per request
and batch) and deletes each batch with DeleteMessageBatch: every rule of the one-by-one path
holds, and a message SQS refused to delete is recognised when it comes back."""

import logging

from django.utils import timezone

from approvals.models import ObservedUse, PoisonMessage, SecurityAlarm, SessionActivity
from approvals.services.activity import SEAL_CODE, activity_seal_verify
from approvals.services.watch import PollReport, _batch_delete, _batch_handle, watch_poll
from approvals.timeline import timeline_verify
from awsaccess import runtime, watch_queue
from tests.activity_calls import call_record
from tests.processes import wait_until
from tests.watch.helpers import active_request


def watched_request(watched):
    """An active request whose worker's AssumeRole is already off the watch queue."""
    access_request = active_request(watched.cast, watched.profile)
    watched.poll_until(lambda: ObservedUse.objects.filter(request=access_request).exists())
    return access_request


def polls(received: int) -> PollReport:
    """The watcher's own polls until `received` messages came (bounded) → their sum."""
    total = PollReport()

    def enough() -> bool:
        report = watch_poll(wait_seconds=1)
        for name in ("received", "recorded", "duplicates", "alarms", "poison", "activity"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        return total.received >= received

    wait_until(enough, timeout=15, interval=0, what=f"{received} messages polled")
    return total


def test_a_batch_with_a_duplicate_a_poison_message_and_an_unexplained_call_is_stored_and_deleted(
    watched,
):
    access_request = watched_request(watched)
    now = timezone.now()
    listed = call_record(access_request, at=now)
    roles = call_record(access_request, at=now, service="iam", action="ListRoles")
    stranger = call_record(access_request, at=now)
    stranger["userIdentity"]["sessionContext"]["sourceIdentity"] = "made-up-identity"
    watched.send_raw("this is not json {")
    watched.put_events(listed, roles, listed, stranger)

    total = polls(received=5)

    assert (total.received, total.activity, total.duplicates, total.poison) == (5, 3, 1, 1)
    assert total.alarms == 1  # the unexplained call (poison is reported on its own)
    rows = {row.event_id: row for row in SessionActivity.objects.all()}
    assert set(rows) == {listed["eventID"], roles["eventID"], stranger["eventID"]}
    assert rows[listed["eventID"]].request_id == access_request.pk
    assert not rows[listed["eventID"]].unexplained
    assert rows[stranger["eventID"]].request_id is None
    assert "names no request" in rows[stranger["eventID"]].unexplained
    assert SecurityAlarm.objects.filter(kind="unexplained_activity").count() == 1
    assert PoisonMessage.objects.get().body == "this is not json {"
    assert SecurityAlarm.objects.filter(kind="poison_message").count() == 1
    # The request's calls are sealed on its chain, and the seals hold.
    assert not SessionActivity.objects.filter(request=access_request, seal__isnull=True).exists()
    sealed = access_request.events.filter(code=SEAL_CODE)
    assert sum(seal.detail["count"] for seal in sealed) == 2
    assert activity_seal_verify(access_request) == []
    assert timeline_verify().ok
    assert watch_poll(wait_seconds=1).received == 0  # every message deleted


def test_a_message_sqs_refused_to_delete_comes_back_and_is_recognised(watched, settings, caplog):
    access_request = watched_request(watched)
    records = [call_record(access_request, at=timezone.now()) for _ in range(3)]
    watched.put_events(*records)
    connection = runtime.broker_connection()
    profile = watched.profile
    url = watch_queue.watch_queue_url(connection, profile.aws_target())
    received: list = []

    def all_received() -> bool:
        received.extend(
            watch_queue.messages_receive(
                connection, region=profile.region, queue_url=url, wait_seconds=1,
                visibility_timeout=1,
            )
        )  # fmt: skip
        return len(received) >= 3

    wait_until(all_received, timeout=15, interval=0, what="the three calls on the watch queue")
    report = PollReport()
    _batch_handle(profile, url, received, report)
    assert report.activity == 3
    # SQS refuses one entry of the batch (a receipt handle it no longer accepts).
    refused = received[1]
    with caplog.at_level(logging.WARNING, logger="approvals.services.watch"):
        _batch_delete(
            profile, url, [received[0], {**refused, "receipt_handle": "stale"}, received[2]]
        )
    assert f"watch message {refused['message_id']} not deleted yet" in caplog.text

    again = polls(received=1)

    assert (again.received, again.duplicates, again.recorded, again.poison) == (1, 1, 0, 0)
    assert (
        SessionActivity.objects.filter(
            event_id__in=[record["eventID"] for record in records]
        ).count()
        == 3
    )
    assert watch_poll(wait_seconds=1).received == 0  # deleted this time
