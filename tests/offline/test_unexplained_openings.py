"""From the attacker's side of the watch: an `offline-` source identity is not an opening by
itself. One that names no kit, one used by a principal other than the kit's user, one AWS
refused, and a session of another role carrying a kit's identity are each an alarm that names
what happened, and none of them marks a kit exposed or opens an offline incident."""

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from approvals.models import (
    AccessRequest,
    KitState,
    ObservedUse,
    OfflineKit,
    OfflineOpening,
    RequestKind,
    SecurityAlarm,
    SessionActivity,
)
from approvals.services.activity import session_call_record
from approvals.services.watch import watch_poll
from approvals.watch_events import session_call_parse
from awsaccess.offline_kit import mfa_code
from tests.processes import wait_until
from tests.watch.conftest import Watched, cloudtrail_event, event_by
from tests.watch.test_activity import principal_keys

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_WAIT = 20


def _observed(source_identity: str) -> ObservedUse:
    """The watch's record of the AssumeRole made with this source identity (polled in-process)."""
    found: list[ObservedUse] = []

    def seen() -> bool:
        watch_poll(wait_seconds=1)
        found[:] = ObservedUse.objects.filter(source_identity=source_identity)
        return bool(found)

    wait_until(seen, timeout=WATCH_WAIT, interval=0, what=f"the AssumeRole as {source_identity}")
    [observed] = found
    return observed


def _alarm_for(observed: ObservedUse) -> SecurityAlarm:
    assert not observed.explained and observed.request is None
    return SecurityAlarm.objects.get(kind="unexplained_use", dedup_key=f"use:{observed.event_id}")


def _no_opening_anywhere(kit_id: str) -> None:
    assert OfflineKit.objects.get(pk=kit_id).state == KitState.SEALED
    assert not OfflineOpening.objects.exists()
    assert not AccessRequest.objects.filter(kind=RequestKind.OFFLINE).exists()
    assert not SecurityAlarm.objects.filter(kind="offline_kit_opened").exists()


def test_an_offline_identity_naming_no_kit_is_alarmed_with_the_key_it_used(kits):
    kit, secrets = kits.stolen()
    disguised = "offline-0000000000-20300101T000000Z"  # names no kit: hides whose key it was
    credentials = kits.sts(kit, secrets).assume_role(
        RoleArn=kit["role_arn"],
        RoleSessionName="disguised",
        SourceIdentity=disguised,
        SerialNumber=kit["mfa_serial"],
        TokenCode=mfa_code(secrets.mfa_seed, time.time()),
    )["Credentials"]
    boto3.client(
        "s3",
        endpoint_url=kits.sandbox.endpoint_url,
        region_name=kit["region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    ).list_buckets()

    alarm = _alarm_for(_observed(disguised))
    assert alarm.detail["unexplained"] == (
        f"source identity {disguised!r} names no offline kit of this role, "
        f"with the key of kit {kit['kit_id']}: rotate it"
    )
    # The session's calls are alarmed too, tied to no request.
    wait_until(
        lambda: (
            SessionActivity.objects.filter(
                source_identity=disguised, action="ListBuckets", request=None
            )
            .exclude(unexplained="")
            .exists()
        ),
        timeout=WATCH_WAIT,
        what="the disguised session's call on the record",
    )
    assert SecurityAlarm.objects.filter(kind="unexplained_activity").exists()
    _no_opening_anywhere(kit["kit_id"])


def test_a_kits_identity_used_by_another_principal_is_alarmed_and_opens_nothing(kits, settings):
    kit, _ = kits.stolen()
    principal = kits.profile.principal_arn
    # The portal's own principal tries to pass as the kit: AWS refuses (it holds no grant) …
    tried = f"offline-{kit['kit_id']}-20300101T000001Z"
    sts = boto3.client(
        "sts",
        endpoint_url=kits.sandbox.endpoint_url,
        region_name=kit["region"],
        config=Config(retries={"max_attempts": 1}),
        **principal_keys(settings),
    )
    with pytest.raises(ClientError):
        sts.assume_role(RoleArn=kit["role_arn"], RoleSessionName="attempt", SourceIdentity=tried)
    # … and CloudTrail shows one that AWS allowed (a loosened trust, say).
    allowed = f"offline-{kit['kit_id']}-20300101T000002Z"
    Watched(aws=kits.live.aws, cast=kits.live.cast).put_events(
        event_by(
            kits.profile,
            **{
                "userIdentity.arn": principal,
                "requestParameters.sourceIdentity": allowed,
                "requestParameters.roleSessionName": allowed,
                "responseElements.sourceIdentity": allowed,
            },
        )
    )

    for source_identity in (tried, allowed):
        alarm = _alarm_for(_observed(source_identity))
        unexplained = f"assumed by {principal}, not kit {kit['kit_id']}'s user"
        assert alarm.detail["unexplained"] == unexplained
    _no_opening_anywhere(kit["kit_id"])


def test_an_opening_aws_refused_is_alarmed_as_the_kits_key_in_use(kits):
    kit, secrets = kits.stolen()
    refused = f"offline-{kit['kit_id']}-20300101T000003Z"
    with pytest.raises(ClientError):  # the kit's key without the MFA code
        kits.sts(kit, secrets).assume_role(
            RoleArn=kit["role_arn"], RoleSessionName="attempt", SourceIdentity=refused
        )

    alarm = _alarm_for(_observed(refused))
    assert alarm.detail["unexplained"] == (
        f"kit {kit['kit_id']}'s key, refused by AWS (AccessDenied): kit_rotate {kit['kit_id']}"
    )
    assert alarm.detail["unexplained"] in alarm.title
    _no_opening_anywhere(kit["kit_id"])


def test_a_session_of_another_role_carrying_a_kits_identity_opens_no_incident(kits):
    kit, _ = kits.stolen()
    other_role = kits.sandbox.role_arn  # source identities carry over when roles are chained
    identity = f"offline-{kit['kit_id']}-20300101T000004Z"
    record = cloudtrail_event(
        "session_call_create_bucket",
        **{
            "userIdentity.sessionContext.sessionIssuer.arn": other_role,
            "userIdentity.sessionContext.sourceIdentity": identity,
            "awsRegion": kits.profile.region,
        },
    )

    row = session_call_record(call=session_call_parse(json.dumps(record)), profile=kits.profile)

    assert row.request is None and row.unexplained == f"a session of another role ({other_role})"
    assert SecurityAlarm.objects.get(kind="unexplained_activity", dedup_key__contains=row.event_id)
    _no_opening_anywhere(kit["kit_id"])
