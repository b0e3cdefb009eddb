"""Creating a kit: one private page per custodian (the words, the kit's id and fingerprint, the
procedure), a kit file, and in the portal only what names the kit. A kit that one person could
open, a custodian named twice, or a second live kit of a profile is refused with nothing made."""

import io
import json
import re
import stat

import pytest
from django.core.management import CommandError, call_command

from approvals.models import OfflineKit, TimelineEvent
from approvals.offline_kit_format import kit_fingerprint

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_custodian_gets_a_private_page_with_the_words_the_kit_and_the_procedure(kits):
    kit_id, directory = kits.create()

    kit = OfflineKit.objects.get(pk=kit_id)
    assert sorted(path.name for path in directory.iterdir()) == [
        f"kit-{kit_id}.json", "share-alice.txt", "share-bob.txt", "share-carol.txt",
    ]  # fmt: skip
    pages = {name: (directory / f"share-{name}.txt") for name in ("alice", "bob", "carol")}
    for name, path in pages.items():
        page = path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert f"Kit id:       {kit_id}" in page and f"Fingerprint:  {kit.fingerprint}" in page
        assert len(page.split("words: ", 1)[1].splitlines()[0].split()) == 33
        assert f"breakglass kit open kit-{kit_id}.json --share" in page  # the procedure
        assert f"manage.py kit_rotate {kit_id}" in page
    words = {path.read_text().split("words: ", 1)[1].splitlines()[0] for path in pages.values()}
    assert len(words) == 3  # one share each, not one share copied

    assert kit_fingerprint(json.loads((directory / f"kit-{kit_id}.json").read_text())) == (
        kit.fingerprint
    )
    event = TimelineEvent.objects.get(code="approvals.kit.created")
    assert event.detail["kit"] == kit_id and event.detail["custodians"] == ["alice", "bob", "carol"]
    assert event.detail["access_key_id"] == kit.access_key_id


@pytest.mark.parametrize(
    "custodians, threshold, message",
    [
        ("alice,bob,carol", 1, "the threshold is at least 2 (two people)"),
        ("alice,bob", 3, "at most the number of custodians (2)"),
        ("alice,bob,Alice", 2, "each custodian is named once"),
        ("alice", 1, "a kit has 2 to"),
        ("alice,bob/../../x", 2, "custodian names are 1-40 letters"),
    ],
)
def test_a_kit_one_person_could_open_is_refused_and_nothing_is_made(
    kits, custodians, threshold, message
):
    iam = kits.sandbox.client("iam", region_name="us-east-1")
    users_before = {user["UserName"] for user in iam.list_users()["Users"]}

    with pytest.raises(CommandError, match=re.escape(message)):
        kits.create(custodians=custodians, threshold=threshold)

    assert not OfflineKit.objects.exists()
    assert not (kits.root / "kit").exists() or not any((kits.root / "kit").iterdir())
    assert {user["UserName"] for user in iam.list_users()["Users"]} == users_before


def test_a_profile_has_one_live_kit_replaced_only_by_rotation(kits):
    kit_id, _ = kits.create()
    key_ids = {OfflineKit.objects.get(pk=kit_id).access_key_id}

    with pytest.raises(CommandError, match=f"already has kit {kit_id} .*kit_rotate {kit_id}"):
        kits.create(out="again")

    assert list(OfflineKit.objects.values_list("pk", flat=True)) == [kit_id]
    user = OfflineKit.objects.get(pk=kit_id).principal_arn.rsplit("/", 1)[1]
    iam = kits.sandbox.client("iam", region_name="us-east-1")
    assert {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]} == (
        key_ids
    )
    assert not (kits.root / "again").exists() or not any((kits.root / "again").iterdir())


def test_the_portal_keeps_only_what_names_the_kit(kits):
    kit_id, _ = kits.create()
    stdout = io.StringIO()
    call_command("dumpdata", "approvals.offlinekit", stdout=stdout)

    [row] = json.loads(stdout.getvalue())
    assert set(row["fields"]) == {
        "profile", "fingerprint", "principal_arn", "access_key_id", "mfa_serial",
        "record_public_key", "custodians", "threshold", "state", "created_at", "exposed_at",
        "rotated_at", "replaced_by",
    }  # fmt: skip
    assert row["pk"] == kit_id
