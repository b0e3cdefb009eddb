"""A rotation that cannot retire the old key (AWS refuses the provisioner, for real) says so
loudly, leaves the state that shows both kits live, and a rerun of kit_rotate finishes it
without issuing a third kit."""

import json

import pytest
from django.core.management import CommandError

from approvals.errors import NotAllowed
from approvals.models import KitState, OfflineKit, SecurityAlarm, TimelineEvent
from approvals.services.offline_kit import kit_rotate
from awsaccess.sandbox.bootstrap import PROVISIONER_USER

pytestmark = pytest.mark.django_db(transaction=True)

DENY_RETIRE = "test-deny-offline-key-deletion"


def _keys(iam, user: str) -> set[str]:
    return {key["AccessKeyId"] for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}


def test_a_rotation_that_cannot_retire_the_old_key_is_loud_and_a_rerun_finishes_it(kits):
    kit_id, directory = kits.create()
    old = OfflineKit.objects.get(pk=kit_id)
    iam = kits.sandbox.client("iam", region_name="us-east-1")
    user = old.principal_arn.rsplit("/", 1)[1]
    # A real refusal of the retiring step only: the provisioner may not delete this user's keys.
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "iam:DeleteAccessKey", "Resource": old.principal_arn}
        ],
    }
    iam.put_user_policy(
        UserName=PROVISIONER_USER, PolicyName=DENY_RETIRE, PolicyDocument=json.dumps(deny)
    )
    try:
        with pytest.raises(CommandError) as failed:
            kits.rotate(kit_id, out="rotated")
    finally:
        iam.delete_user_policy(UserName=PROVISIONER_USER, PolicyName=DENY_RETIRE)

    old.refresh_from_db()
    new = old.replaced_by
    message = str(failed.value)
    assert message.startswith("ROTATION NOT FINISHED: ")
    assert f"key {old.access_key_id} and MFA device {old.mfa_serial} are still live" in message
    assert f"beside new kit {new.id}" in message and f"run kit_rotate {kit_id} again" in message
    assert old.state == KitState.SEALED and new.state == KitState.SEALED
    assert _keys(iam, user) == {old.access_key_id, new.access_key_id}
    assert SecurityAlarm.objects.filter(kind="offline_kit_rotation_incomplete").exists()
    assert TimelineEvent.objects.filter(code="approvals.kit.rotation_incomplete").exists()
    with pytest.raises(NotAllowed, match="not retired yet"):  # the drill's way in, too
        kit_rotate(kit_id=kit_id, out_dir=kits.root / "again", connection=kits.sandbox.provisioner)

    lines = kits.rotate_output(kit_id, "--out", str(kits.root / "again"))

    assert "interrupted rotation finished" in lines[0] and "No new kit was issued" in lines[0]
    assert lines[-1] == new.id
    assert OfflineKit.objects.count() == 2 and not (kits.root / "again").exists()
    old.refresh_from_db()
    assert old.state == KitState.ROTATED and old.replaced_by_id == new.id
    assert _keys(iam, user) == {new.access_key_id}
    rotated = TimelineEvent.objects.get(code="approvals.kit.rotated").detail
    assert rotated["resumed"] is True and rotated["old_key_deleted"] == old.access_key_id
    refused = kits.open(
        directory / f"kit-{kit_id}.json", directory / "share-alice.txt", directory / "share-bob.txt"
    )
    assert refused.returncode == 3 and "breakglass: aws_refused: " in refused.stderr
