"""Signed checkpoints anchored outside the database (issue 14), tried as a database writer would:
re-hash a rewritten chain forward with the README's formula, delete a chain and its head,
truncate the table; and as the broker would: delete or write over an anchored checkpoint."""

import hashlib
import json
import uuid
from io import StringIO

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from approvals import signatures
from approvals.models import (
    SecurityAlarm,
    TimelineCheckpoint,
    TimelineEvent,
    TimelineHead,
    WebhookDelivery,
)
from approvals.services.api_access import personal_token_create
from approvals.services.checkpoints import header_name, request_seal, timeline_checkpoint
from approvals.services.requests import request_approve, request_cancel
from approvals.services.webhooks import webhook_endpoint_create
from approvals.timeline import timeline_append, timeline_verify, timeline_verify_since
from awsaccess.sandbox.bootstrap import ANCHOR_BUCKET
from tests.approvals.signed_verifier import verify_signed_request
from tests.conftest import fresh_code
from tests.tamper import raw_sql


@pytest.fixture
def anchored(cast, aws_sandbox, settings, tmp_path):
    """The portal anchored in the sandbox's Object Lock bucket, under a prefix of its own."""
    settings.AWS_ENDPOINT_URL = aws_sandbox.endpoint_url
    settings.AWS_BROKER_CREDENTIALS_FILE = str(aws_sandbox.state_dir / "broker.json")
    settings.ANCHOR_BUCKET = ANCHOR_BUCKET
    settings.ANCHOR_PREFIX = f"test-{uuid.uuid4().hex[:12]}/"
    settings.ANCHOR_REGION = aws_sandbox.region
    return aws_sandbox


def verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_timeline", *args, stdout=out)
    return out.getvalue()


def readme_hash(event: dict) -> str:
    """The README's published chain formula, as an attacker would type it in."""
    canonical = json.dumps(
        [event["chain"], event["sequence"], event["prev_hash"], event["created_at"],
         event["actor_name"], event["code"], event["outcome"], event["detail"],
         event["source_ip"] or "", event["user_agent"]],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def rewrite_and_rehash(chain: str, edit) -> None:
    """Edit the chain's events with `edit(event)` and re-hash every event forward, head too."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, chain, sequence, prev_hash, created_at, actor_name, code, outcome, "
            "detail, source_ip, user_agent FROM approvals_timelineevent WHERE chain = %s "
            "ORDER BY sequence",
            [chain],
        )
        names = [column[0] for column in cursor.description]
        events = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    prev = "0" * 64
    for event in events:
        event["detail"] = json.loads(event["detail"]) if isinstance(event["detail"], str) else (
            event["detail"]
        )  # fmt: skip
        edit(event)
        event["prev_hash"] = prev
        event["created_at"] = event["created_at"].isoformat(timespec="microseconds")
        digest = readme_hash(event)
        raw_sql(
            "UPDATE approvals_timelineevent SET detail = %s, prev_hash = %s, hash = %s "
            "WHERE id = %s",
            [json.dumps(event["detail"]), prev, digest, event["id"]],
        )
        prev = digest
    raw_sql("UPDATE approvals_timelinehead SET hash = %s WHERE chain = %s", [prev, chain])


def approved_request(cast):
    access_request = cast.open_request()
    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=access_request.pk, approver=approver, otp_code=fresh_code(approver)
        )
    return access_request


def test_a_checkpoint_is_signed_stored_anchored_and_sent_to_webhooks(anchored, cast):
    endpoint, _ = webhook_endpoint_create(url="http://127.0.0.1:9/hook")
    access_request = cast.open_request()

    row = timeline_checkpoint()

    assert row is not None and row.anchored_at is not None
    chain = f"request:{access_request.pk}"
    assert [chain, 1, TimelineEvent.objects.get(chain=chain).hash] in row.heads
    assert row.header["event_count"] == TimelineEvent.objects.count()
    assert signatures.verify("timeline.checkpoint", row.header, row.key_id, row.signature)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, event="timeline.checkpoint")
    assert delivery.payload["checkpoint"]["heads_digest"] == row.header["heads_digest"]
    assert delivery.payload["checkpoint"]["anchor"]["header"].endswith(header_name(1))
    assert timeline_checkpoint() is None  # nothing new: no new checkpoint
    assert "every chain matches anchored checkpoint #1" in verify()


def test_a_chain_re_hashed_forward_with_the_readme_formula_is_named_by_verify_timeline(
    anchored, cast
):
    access_request = approved_request(cast)
    timeline_checkpoint()
    chain = f"request:{access_request.pk}"

    def new_justification(event):
        if event["code"] == "approvals.request.opened":
            event["detail"]["justification"] = "Routine maintenance, nothing to see."

    rewrite_and_rehash(chain, new_justification)
    raw_sql(
        "UPDATE approvals_accessrequest SET justification = %s WHERE id = %s",
        ["Routine maintenance, nothing to see.", str(access_request.pk)],
    )

    assert timeline_verify().ok  # the bare chain cannot tell: it is unkeyed
    with pytest.raises(CommandError) as failure:
        verify()
    assert f"request {access_request.pk} (INC-1234)" in str(failure.value)
    assert "differs from the signed checkpoint" in str(failure.value)
    # and the portal refuses to sign the rewrite into its next checkpoint
    timeline_append(access_request=None, code="test.later")
    assert timeline_checkpoint() is None
    alarm = SecurityAlarm.objects.get(kind="timeline_tampered")
    assert chain in alarm.title


def test_a_deleted_chain_and_head_are_detected(anchored, cast):
    doomed = cast.open_request()
    cast.open_request(ticket="INC-5678")
    timeline_checkpoint()
    chain = f"request:{doomed.pk}"

    raw_sql("DELETE FROM approvals_timelineevent WHERE chain = %s", [chain])
    raw_sql("DELETE FROM approvals_timelinehead WHERE chain = %s", [chain])

    assert timeline_verify().ok
    with pytest.raises(CommandError) as failure:
        verify()
    assert f"request {doomed.pk}" in str(failure.value)
    assert "deleted" in str(failure.value)


def test_a_truncated_timeline_is_detected_from_the_anchor(anchored, cast):
    for ticket in ("INC-1", "INC-2", "INC-3"):
        cast.open_request(ticket=ticket)
    timeline_checkpoint()

    raw_sql("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own open transaction
    raw_sql(
        "TRUNCATE approvals_timelineevent, approvals_timelinehead, "
        "approvals_timelinecheckpoint CASCADE"
    )

    assert timeline_verify().ok  # nothing left in the database to disagree with
    with pytest.raises(CommandError) as failure:
        verify()
    assert "chains are missing or short" in str(failure.value) or "are short" in str(failure.value)


def test_incremental_verification_starts_from_the_last_verified_checkpoint(
    anchored, cast, tmp_path
):
    state = str(tmp_path / "verified.json")
    cast.open_request()
    timeline_checkpoint()
    assert "from the first event" in verify("--incremental", "--state", state)

    later = cast.open_request(ticket="INC-777")
    timeline_checkpoint()
    report = verify("--incremental", "--state", state)
    assert "since checkpoint #1" in report
    assert "anchored checkpoint #2" in report

    timeline_append(access_request=later, code="test.after_checkpoint")
    edited = TimelineEvent.objects.get(chain=f"request:{later.pk}", code="test.after_checkpoint")
    raw_sql("UPDATE approvals_timelineevent SET actor_name = 'mallory' WHERE id = %s", [edited.pk])
    with pytest.raises(CommandError) as failure:
        verify("--incremental", "--state", state)
    assert f"request {later.pk}" in str(failure.value)
    assert "edited" in str(failure.value)


def test_the_broker_cannot_delete_shorten_or_overwrite_an_anchored_checkpoint(anchored, cast):
    cast.open_request()
    row = timeline_checkpoint()
    broker = anchored.client("s3", anchored.broker)
    key = row.anchor_key

    for attempt in (
        lambda: broker.delete_object(Bucket=ANCHOR_BUCKET, Key=key, VersionId=row.anchor_version),
        lambda: broker.delete_object(Bucket=ANCHOR_BUCKET, Key=key),
        lambda: broker.put_object_retention(
            Bucket=ANCHOR_BUCKET,
            Key=key,
            VersionId=row.anchor_version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": row.created_at},
        ),
        lambda: broker.put_object_lock_configuration(
            Bucket=ANCHOR_BUCKET, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        ),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    owner = anchored.client("s3")  # even the provisioner, who may do anything in IAM
    with pytest.raises(ClientError):
        owner.delete_object(Bucket=ANCHOR_BUCKET, Key=key, VersionId=row.anchor_version)

    broker.put_object(Bucket=ANCHOR_BUCKET, Key=key, Body=b'{"forged": true}')

    original = owner.get_object(Bucket=ANCHOR_BUCKET, Key=key, VersionId=row.anchor_version)
    assert json.loads(original["Body"].read())["signature"]["value"] == row.signature
    with pytest.raises(CommandError) as failure:
        verify()
    assert "was written over (2 versions; the locked original is intact)" in str(failure.value)


def test_one_ended_request_verifies_from_its_api_timeline_and_the_public_key_alone(anchored, cast):
    access_request = approved_request(cast)
    other = cast.open_request(ticket="INC-42")
    request_cancel(access_request_id=other.pk, actor=cast.requester)
    request_seal(access_request_id=other.pk)
    client = Client(
        HTTP_AUTHORIZATION=f"Bearer {personal_token_create(user=cast.auditor, name='t')}"
    )

    body = client.get(f"/api/v1/requests/{access_request.pk}/timeline/").json()
    result = verify_signed_request(body, [k.as_dict() for k in signatures.public_keys()])
    assert result == {"approvals": 2, "sealed_sequence": None}

    ended = client.get(f"/api/v1/requests/{other.pk}/timeline/").json()
    result = verify_signed_request(ended, [k.as_dict() for k in signatures.public_keys()])
    assert result["sealed_sequence"] == ended["head_sequence"] - 1

    ended["events"][0]["detail"]["justification"] = "rewritten"
    with pytest.raises(AssertionError):
        verify_signed_request(ended, [k.as_dict() for k in signatures.public_keys()])


def test_a_forged_checkpoint_row_is_not_signed_over(anchored, cast):
    cast.open_request()
    row = timeline_checkpoint()
    TimelineCheckpoint.objects.filter(pk=row.pk).update(header={**row.header, "event_count": 1})
    cast.open_request(ticket="INC-9")

    assert timeline_checkpoint() is None
    assert SecurityAlarm.objects.filter(kind="timeline_tampered").exists()


def test_provision_anchor_makes_a_compliance_bucket_and_check_refuses_one_without(
    anchored, settings
):
    provisioner = str(anchored.state_dir / "provisioner.json")
    settings.ANCHOR_BUCKET = f"anchor-test-{uuid.uuid4().hex[:8]}"

    out = StringIO()
    call_command("provision_anchor", "--credentials-file", provisioner, stdout=out)
    call_command("provision_anchor", "--check", "--credentials-file", provisioner, stdout=out)
    assert "created bucket" in out.getvalue()
    assert out.getvalue().endswith("Object Lock, COMPLIANCE retention\n")

    plain = f"plain-{uuid.uuid4().hex[:8]}"
    anchored.client("s3").create_bucket(
        Bucket=plain, CreateBucketConfiguration={"LocationConstraint": anchored.region}
    )
    settings.ANCHOR_BUCKET = plain
    with pytest.raises(CommandError, match="no Object Lock configuration"):
        call_command("provision_anchor", "--check", "--credentials-file", provisioner)


def heads_now() -> dict[str, tuple[int, str]]:
    return {h.chain: (h.sequence, h.hash) for h in TimelineHead.objects.all()}


def test_incremental_verification_checks_what_was_appended_and_what_was_vouched_for(cast):
    kept, moved = cast.open_request(), cast.open_request(ticket="INC-2")
    verified = heads_now()
    timeline_append(access_request=moved, code="test.after")
    new = cast.open_request(ticket="INC-3")

    result = timeline_verify_since(verified=verified)
    assert result.ok, result
    assert result.events_checked == TimelineEvent.objects.count() - sum(
        sequence for sequence, _ in verified.values()
    )
    assert result.chains_checked == TimelineHead.objects.count()

    later = TimelineEvent.objects.get(chain=f"request:{moved.pk}", code="test.after")
    raw_sql("UPDATE approvals_timelineevent SET actor_name = 'mallory' WHERE id = %s", [later.pk])
    assert "edited" in timeline_verify_since(verified=verified).reason
    assert kept and new


@pytest.mark.parametrize("head_too", [False, True])
def test_incremental_verification_finds_a_chain_re_hashed_forward(cast, head_too):
    access_request = approved_request(cast)
    verified = heads_now()
    chain = f"request:{access_request.pk}"

    def new_justification(event):
        if event["code"] == "approvals.request.opened":
            event["detail"]["justification"] = "Routine maintenance, nothing to see."

    head = TimelineHead.objects.get(chain=chain)
    rewrite_and_rehash(chain, new_justification)
    if not head_too:  # the head left as the checkpoint saw it
        raw_sql("UPDATE approvals_timelinehead SET hash = %s WHERE chain = %s", [head.hash, chain])

    result = timeline_verify_since(verified=verified)
    assert result.broken_chain == chain
    assert "differs from the signed checkpoint" in result.reason


def test_incremental_verification_finds_deleted_chains_and_an_edited_head(cast):
    doomed, other = cast.open_request(), cast.open_request(ticket="INC-2")
    verified = heads_now()

    raw_sql("DELETE FROM approvals_timelineevent WHERE chain = %s", [f"request:{doomed.pk}"])
    raw_sql("DELETE FROM approvals_timelinehead WHERE chain = %s", [f"request:{doomed.pk}"])
    result = timeline_verify_since(verified=verified)
    assert result.broken_chain == f"request:{doomed.pk}"
    assert "missing (deleted)" in result.reason

    verified.pop(f"request:{doomed.pk}")
    timeline_append(access_request=other, code="test.after")
    raw_sql(
        "UPDATE approvals_timelinehead SET hash = %s WHERE chain = %s",
        ["f" * 64, f"request:{other.pk}"],
    )
    result = timeline_verify_since(verified=verified)
    assert result.broken_chain == f"request:{other.pk}"
    assert "head edited" in result.reason


def test_incremental_verification_holds_chains_to_a_newer_checkpoint(cast):
    access_request = cast.open_request()
    verified = heads_now()
    timeline_append(access_request=access_request, code="test.after")
    newer = heads_now()
    chain = f"request:{access_request.pk}"
    assert timeline_verify_since(verified=verified, pins=newer).ok

    last = TimelineEvent.objects.get(chain=chain, code="test.after")
    raw_sql("DELETE FROM approvals_timelineevent WHERE id = %s", [last.pk])
    raw_sql("UPDATE approvals_timelinehead SET sequence = 1, hash = %s WHERE chain = %s",
            [verified[chain][1], chain])  # fmt: skip

    result = timeline_verify_since(verified=verified, pins=newer)
    assert result.broken_chain == chain
    assert "vouches for 2 events" in result.reason
