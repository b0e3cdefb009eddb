import json
from datetime import timedelta

from django.utils import timezone

from approvals.models import (
    AccessRequest,
    Heartbeat,
    ObservedUse,
    PoisonMessage,
    SecurityAlarm,
    TimelineEvent,
)
from approvals.services.sweep import grants_sweep
from approvals.services.watch import watch_poll
from approvals.timeline import SYSTEM_CHAIN, timeline_verify
from tests.aws_profile import sandbox_profile
from tests.processes import wait_until
from tests.watch.conftest import event_by, event_for
from tests.watch.helpers import active_request, revoked_request


def request_events(access_request: AccessRequest, code: str) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(request=access_request, code=code))


def test_an_assume_role_for_an_active_request_lands_on_its_timeline(watched):
    # No injection: the sandbox's trail delivers the worker's own AssumeRole to the watch queue.
    access_request = active_request(watched.cast, watched.profile)
    record = watched.real_assume_role(access_request)

    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=record["eventID"]).exists())

    use = ObservedUse.objects.get()
    assert (use.event_id, use.request, use.explained) == (record["eventID"], access_request, True)
    assert (use.source_ip, use.user_agent) == (record["sourceIPAddress"], record["userAgent"])
    assert use.session_name == record["requestParameters"]["roleSessionName"]
    [event] = request_events(access_request, "approvals.role.assumed")
    assert event.detail["event_id"] == record["eventID"]
    assert event.detail["message"] == (
        f"role assumed from IP {record['sourceIPAddress']} by {watched.profile.principal_arn}"
    )
    assert (event.source_ip, event.user_agent, event.outcome) == (
        record["sourceIPAddress"],
        record["userAgent"],
        "success",
    )
    assert not SecurityAlarm.objects.exists()
    assert timeline_verify().ok


def test_an_assume_role_after_revocation_raises_an_alarm_with_the_raw_event(watched):
    access_request = revoked_request(watched.cast, watched.profile)
    # A session issued before the revocation could still be used; this one is a new AssumeRole.
    later = (access_request.revoked_at + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = event_for(access_request, eventTime=later)

    watched.put_events(record)
    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=record["eventID"]).exists())

    # The worker's own AssumeRole (while active) is on the record too, explained and quiet.
    alarm = SecurityAlarm.objects.get()
    assert alarm.kind == "unexplained_use"
    assert alarm.request == access_request
    assert "after the grant ended" in alarm.title
    assert alarm.raw_event["detail"]["eventID"] == record["eventID"]
    assert alarm.status == "open"
    [event] = [
        event
        for event in request_events(access_request, "approvals.role.assumed")
        if event.detail["event_id"] == record["eventID"]
    ]
    assert event.outcome == "alarm"
    assert request_events(access_request, "approvals.alarm.opened")


def test_the_broker_s_own_grant_and_revocation_writes_are_let_go_not_poison(watched):
    # The changes rule routes every write to the principal and the role, the broker's too: its
    # grant (PutUserPolicy), revocation deny (PutRolePolicy) and grant removal (DeleteUserPolicy)
    # reach the watch queue and are read as its routine, never set aside as unreadable.
    revoked_request(watched.cast, watched.profile)
    watched.aws.sandbox.trail_idle()
    reports = []

    def let_go() -> bool:
        reports.extend(watched.poll_until(lambda: True))
        return sum(report.routine for report in reports) >= 3

    wait_until(let_go, timeout=30, interval=0, what="the broker's three writes read")

    assert sum(report.poison for report in reports) == 0
    assert not PoisonMessage.objects.exists()
    assert not SecurityAlarm.objects.exists()


def test_an_assume_role_outside_the_portal_raises_an_alarm_on_the_system_chain(watched):
    watched.put_events(event_by(watched.profile))
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    alarm = SecurityAlarm.objects.get()
    assert alarm.request is None and alarm.profile == watched.profile
    assert "no source identity: assumed outside the portal" in alarm.title
    assert TimelineEvent.objects.filter(chain=SYSTEM_CHAIN, code="approvals.alarm.opened").exists()
    assert ObservedUse.objects.get().explained is False


def test_another_principal_using_a_live_requests_identity_raises_an_alarm(watched):
    access_request = active_request(watched.cast, watched.profile)
    watched.put_events(event_for(access_request, "assume_role_by_other_role"))
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    alarm = SecurityAlarm.objects.get()
    assert alarm.request == access_request
    assert "role/ci-deploy, not the profile's break-glass principal" in alarm.title


def test_a_refused_assume_role_by_an_intruder_is_an_alarm_too(watched):
    intruder = "arn:aws:iam::123456789012:user/intruder"
    watched.put_events(
        event_by(watched.profile, "assume_role_access_denied", **{"userIdentity.arn": intruder})
    )
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    alarm = SecurityAlarm.objects.get()
    assert "AssumeRole refused (AccessDenied) from IP 192.0.2.199" in alarm.title


def test_a_session_naming_a_request_of_another_profile_is_unexplained(
    watched, aws_sandbox, settings, tmp_path
):
    (tmp_path / "other").mkdir()
    other = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path / "other",
        approver_group=watched.cast.alice.groups.first(),
    )
    access_request = active_request(watched.cast, other.profile)
    # The attacker copies a live request's identity onto a session of a different role.
    forged = event_for(access_request)
    forged["requestParameters"]["roleArn"] = watched.profile.role_arn
    watched.put_events(forged)
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    alarm = SecurityAlarm.objects.get()
    assert alarm.profile == watched.profile
    assert f"the session names no request of profile {watched.profile.slug}" in alarm.title


def test_the_same_event_delivered_twice_is_recorded_once(watched):
    access_request = active_request(watched.cast, watched.profile)
    # The worker's own AssumeRole comes first through the trail: take it off the queue.
    real = watched.real_assume_role(access_request)
    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=real["eventID"]).exists())
    record = event_for(access_request)
    watched.put_events(record, record)

    reports = []
    for _ in range(6):
        reports.append(watch_poll(wait_seconds=1))
        if sum(r.received for r in reports) >= 2:
            break

    assert sum(r.received for r in reports) == 2
    assert sum(r.duplicates for r in reports) == 1
    assert ObservedUse.objects.filter(event_id=record["eventID"]).count() == 1
    assert [
        event.detail["event_id"]
        for event in request_events(access_request, "approvals.role.assumed")
    ].count(record["eventID"]) == 1
    assert watch_poll(wait_seconds=1).received == 0  # both deleted


def test_a_malformed_message_is_set_aside_reported_and_deleted(watched):
    watched.send_raw("this is not json {")
    watched.put_events(event_by(watched.profile, eventID=None))
    watched.poll_until(lambda: PoisonMessage.objects.count() == 2)

    errors = sorted(PoisonMessage.objects.values_list("error", flat=True))
    assert errors == ["eventID is missing", "the message is not JSON"]
    assert SecurityAlarm.objects.filter(kind="poison_message").count() == 2
    assert PoisonMessage.objects.get(error="the message is not JSON").body == "this is not json {"
    assert watch_poll(wait_seconds=1).received == 0


def test_the_session_token_cloudtrail_logs_is_never_stored(watched):
    record = event_by(watched.profile)
    token = record["responseElements"]["credentials"]["sessionToken"]
    watched.put_events(record)
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    stored = [ObservedUse.objects.get().raw_event, SecurityAlarm.objects.get().raw_event]
    for raw in stored:
        assert raw["detail"]["responseElements"]["credentials"]["sessionToken"] == "[scrubbed]"
    assert not TimelineEvent.objects.filter(detail__icontains=token).exists()


def test_several_profiles_are_watched_at_once(watched, aws_sandbox, settings, tmp_path):
    (tmp_path / "second").mkdir()
    second = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path / "second",
        approver_group=watched.cast.alice.groups.first(),
    )
    first_record, second_record = event_by(watched.profile), event_by(second.profile)
    watched.put_events(first_record, second_record)
    watched.poll_until(lambda: ObservedUse.objects.count() == 2)

    assert ObservedUse.objects.get(event_id=first_record["eventID"]).profile == watched.profile
    assert ObservedUse.objects.get(event_id=second_record["eventID"]).profile == second.profile


def test_each_complete_poll_is_a_heartbeat_but_an_unreadable_queue_is_not(watched, cast):
    report = watch_poll(wait_seconds=0)
    assert report.queue_errors == 0
    first = Heartbeat.objects.get(component="watcher").seen_at

    cast.profile.pk = None
    cast.profile.slug, cast.profile.role_arn = "ghost", "arn:aws:iam::123456789012:role/ghost"
    cast.profile.save()  # its watch queue does not exist
    assert watch_poll(wait_seconds=0).queue_errors == 1
    assert Heartbeat.objects.get(component="watcher").seen_at == first


def test_the_sweeper_raises_one_alarm_when_the_watcher_stopped(watched, settings):
    settings.WATCH_STALE_SECONDS = 30
    watch_poll(wait_seconds=0)
    grants_sweep()
    assert not SecurityAlarm.objects.exists()

    Heartbeat.objects.filter(component="watcher").update(
        seen_at=timezone.now() - timedelta(seconds=31)
    )
    grants_sweep()
    grants_sweep()

    alarm = SecurityAlarm.objects.get()
    assert alarm.kind == "watcher_down"
    assert "The watcher has not polled since" in alarm.title


def test_a_use_before_the_approval_is_unexplained(watched):
    access_request = active_request(watched.cast, watched.profile)
    early = (access_request.approved_at - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    watched.put_events(event_for(access_request, eventTime=early))
    watched.poll_until(lambda: SecurityAlarm.objects.exists())

    assert "assumed before the request was approved" in SecurityAlarm.objects.get().title


def test_polls_never_overlap_so_they_cannot_fill_every_worker_slot(db):
    from django.core.cache import cache

    from approvals.services.watch import _POLL_LOCK, watch_poll

    cache.add(_POLL_LOCK, "held by another worker", timeout=30)
    try:
        assert watch_poll(wait_seconds=0).skipped
    finally:
        cache.delete(_POLL_LOCK)
    assert not watch_poll(wait_seconds=0).skipped


def test_a_record_with_wrongly_typed_fields_is_poison_and_the_poll_goes_on(watched):
    # Issue 15: a responseElements or sessionContext that is not an object stopped the watch.
    broken = event_by(watched.profile, responseElements="not an object")
    broken["userIdentity"]["sessionContext"] = {"sessionIssuer": {"arn": watched.profile.role_arn}}
    broken["eventTime"] = "9999-12-31T23:59:59-23:59"  # parses, but no column can hold it
    weird = event_by(watched.profile)
    weird["userIdentity"] = ["not", "an", "object"]
    good = event_by(watched.profile)
    watched.send_raw(json.dumps({"detail": broken}))
    watched.put_events(weird, good)
    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=good["eventID"]).exists())
    watched.poll_until(lambda: PoisonMessage.objects.count() == 1)

    assert SecurityAlarm.objects.filter(kind="poison_message").count() == 1
    assert ObservedUse.objects.filter(event_id=weird["eventID"]).exists()  # read as far as typed
    assert watch_poll(wait_seconds=1).received == 0
