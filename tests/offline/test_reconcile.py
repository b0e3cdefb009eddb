"""When the portal returns: the opening becomes an alarmed incident record of its own with the
session's calls, the kit is marked exposed, the custodians' record is imported; rotating the kit
makes the old shares open nothing and ends the exposed session."""

import io
import json

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command

from approvals.models import (
    KitState,
    NotificationDelivery,
    ObservedUse,
    OfflineKit,
    RequestKind,
    SecurityAlarm,
    SessionActivity,
    Status,
    TimelineEvent,
)
from approvals.services.guard import guard_check
from approvals.services.watch import watch_poll
from tests.offline.conftest import dashboard_kit_state
from tests.processes import wait_until
from tests.web.conftest import verified_client

pytestmark = pytest.mark.django_db(transaction=True)

ALARM_WAIT = 30


def _record_file(kits):
    [record] = (kits.root / "custodian-home").glob("offline-opening-*.json")
    return record


def test_once_the_portal_runs_again_the_opening_is_an_alarmed_incident_with_its_calls(kits):
    kits.profile.notify_emails = "security@example.com"
    kits.profile.save()
    kit_id, directory = kits.create()
    # The portal is down: no web, worker or beat runs, and the client has no database to reach.
    credentials = kits.opened(
        directory / f"kit-{kit_id}.json",
        directory / "share-alice.txt",
        directory / "share-bob.txt",
        reason="INC-77: portal region down; alice and bob",
    )
    kits.s3(credentials).list_buckets()

    kits.live.start_worker()
    kits.live.start_beat()
    try:
        alarm = wait_until(
            lambda: SecurityAlarm.objects.filter(kind="offline_kit_opened").first(),
            timeout=ALARM_WAIT,
            what="the offline opening's alarm",
        )
    except TimeoutError:
        logs = "\n".join(process.log_text()[-3000:] for process in kits.live.processes)
        raise AssertionError(f"no alarm within {ALARM_WAIT} s\n{logs}") from None

    incident = alarm.request
    opening = incident.offline_opening
    assert f"Offline kit {kit_id}" in alarm.title and opening.source_identity in alarm.title
    assert incident.kind == RequestKind.OFFLINE and incident.status == Status.ACTIVE
    assert opening.source_identity.startswith(f"offline-{kit_id}-")
    assert OfflineKit.objects.get(pk=kit_id).state == KitState.EXPOSED
    page = verified_client(kits.live.cast.alice).get("/").content.decode()
    assert dashboard_kit_state(page, kit_id) == "exposed"
    wait_until(
        lambda: (
            SessionActivity.objects.filter(request=incident, action="ListBuckets").exists()
            and ObservedUse.objects.filter(request=incident, explained=True).exists()
        ),
        timeout=ALARM_WAIT,
        what="the session's AssumeRole and calls on the incident record",
    )
    assert NotificationDelivery.objects.filter(alarm=alarm, target="security@example.com")
    assert not SecurityAlarm.objects.filter(kind__startswith="unexplained")

    call_command("kit_import", str(_record_file(kits)), stdout=io.StringIO())

    opening.refresh_from_db()
    imported = incident.events.get(code="approvals.offline.record_imported").detail
    assert imported["reason"] == "INC-77: portal region down; alice and bob"
    assert [share["custodian"] for share in imported["shares"]] == ["alice", "bob"]
    assert opening.record["record"]["session_access_key_id"] == credentials["access_key_id"]


def test_a_record_whose_words_were_changed_is_refused(kits, monkeypatch):
    kit_id, directory = kits.create()
    kits.opened(
        directory / f"kit-{kit_id}.json", directory / "share-alice.txt", directory / "share-bob.txt"
    )
    path = _record_file(kits)
    signed = json.loads(path.read_text())
    signed["record"]["reason"] = "routine maintenance"  # someone rewrites why it was opened
    path.write_text(json.dumps(signed))

    with pytest.raises(CommandError, match="signature does not verify"):
        call_command("kit_import", str(path))
    assert OfflineKit.objects.get(pk=kit_id).openings.count() == 0


def test_an_imported_record_opens_the_incident_even_if_the_watch_missed_the_opening(kits):
    kit_id, directory = kits.create()
    kits.opened(
        directory / f"kit-{kit_id}.json", directory / "share-alice.txt", directory / "share-bob.txt"
    )

    call_command("kit_import", str(_record_file(kits)), stdout=io.StringIO())
    call_command("kit_import", str(_record_file(kits)), stdout=io.StringIO())  # no-op

    kit = OfflineKit.objects.get(pk=kit_id)
    assert kit.state == KitState.EXPOSED
    [opening] = kit.openings.all()
    assert opening.record is not None
    assert SecurityAlarm.objects.filter(kind="offline_kit_opened", request=opening.request)


def test_after_rotation_old_shares_fail_at_aws_new_ones_work_and_the_session_ends(kits):
    kit_id, directory = kits.create()
    old_kit = directory / f"kit-{kit_id}.json"
    old_shares = (directory / "share-alice.txt", directory / "share-carol.txt")
    session = kits.opened(old_kit, *old_shares)
    wait_until(
        lambda: watch_poll(wait_seconds=1) and OfflineKit.objects.get(pk=kit_id).openings.exists(),
        timeout=ALARM_WAIT,
        interval=0,
        what="the portal reconciling the opening",
    )
    # While the opening is live, the guard expects the kit's user, key and trust as they are.
    [before] = guard_check(profile_slugs=[kits.profile.slug])
    assert before.intact, before.drifts

    new_id, new_directory = kits.rotate(kit_id, out="rotated")

    refused = kits.open(old_kit, *old_shares)
    assert refused.returncode == 3 and "breakglass: aws_refused: " in refused.stderr
    fresh = kits.opened(
        new_directory / f"kit-{new_id}.json",
        new_directory / "share-alice.txt",
        new_directory / "share-bob.txt",
    )
    assert kits.s3(fresh).list_buckets()["Buckets"]
    with pytest.raises(ClientError):  # the exposed session was revoked with the rotation
        kits.s3(session).list_buckets()
    old = OfflineKit.objects.get(pk=kit_id)
    assert old.state == KitState.ROTATED and old.replaced_by_id == new_id
    assert OfflineKit.objects.get(pk=new_id).state == KitState.SEALED
    assert old.openings.get().request.status == Status.REVOKED
    rotated = TimelineEvent.objects.get(code="approvals.kit.rotated").detail
    assert (rotated["kit"], rotated["replaced_by"]) == (kit_id, new_id)
    assert rotated["old_key_deleted"] == old.access_key_id and rotated["was"] == "exposed"
    assert rotated["sessions_revoked"] == [str(old.openings.get().request_id)]
    assert (
        old.openings.get()
        .request.events.filter(code="approvals.offline.revoked_on_rotation")
        .exists()
    )
    mixed = kits.open(new_directory / f"kit-{new_id}.json", old_shares[0], *old_shares[1:])
    assert "breakglass: wrong_kit: " in mixed.stderr
    # The guard expects the new kit's key and device on the offline user (and the deny that
    # ended the exposed session on the role), nothing else.
    [after] = guard_check(profile_slugs=[kits.profile.slug])
    assert after.intact, after.drifts
