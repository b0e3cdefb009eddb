"""The offline drill end to end against the sandbox, with the portal's real worker and beat
reconciling: open with the client, prove access, reconcile, rotate, prove the old shares and the
opened session refused; its time to access stored beside the online path's and on the
dashboard."""

import io

import pytest
from django.core.management import CommandError, call_command

from approvals.models import Drill, KitState, OfflineKit, RequestKind
from tests.offline.conftest import dashboard_kit_state
from tests.web.conftest import verified_client

pytestmark = pytest.mark.django_db(transaction=True)


def _drill(kits, *args: str) -> str:
    out = io.StringIO()
    provisioner = str(kits.sandbox.state_dir / "provisioner.json")
    call_command(
        "drill", kits.profile.slug, "--offline", "--credentials-file", provisioner, *args,
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_an_offline_drill_runs_the_whole_path_and_stores_its_time_to_access(kits):
    kit_id, directory = kits.create()
    kits.live.start_worker()
    kits.live.start_beat()
    shares = f"{directory / 'share-alice.txt'},{directory / 'share-carol.txt'}"

    output = _drill(kits, "--shares", shares)  # the new shares go beside the old

    assert "Drill passed" in output
    assert "the old shares and the opened session are refused by AWS" in output
    drill = Drill.objects.get()
    assert drill.passed and drill.path == RequestKind.OFFLINE and drill.kit_id == kit_id
    assert None not in (drill.time_to_access_ms, drill.time_to_revoke_ms, drill.time_to_refused_ms)
    assert drill.request.kind == RequestKind.OFFLINE and drill.request.is_drill
    assert drill.request.offline_opening.record is not None
    old = OfflineKit.objects.get(pk=kit_id)
    assert old.state == KitState.ROTATED
    [rotated] = directory.glob(f"rotated-*/kit-{old.replaced_by_id}.json")
    assert sorted(p.name for p in rotated.parent.glob("share-*.txt")) == [
        "share-alice.txt", "share-bob.txt", "share-carol.txt",
    ]  # fmt: skip

    page = verified_client(kits.live.cast.alice).get("/").content.decode()
    assert dashboard_kit_state(page, kit_id) == "rotated"
    assert dashboard_kit_state(page, old.replaced_by_id) == "sealed"
    assert f"access in {drill.time_to_access_ms} ms" in page
    drills_page = verified_client(kits.live.cast.alice).get("/drills/").content.decode()
    assert "offline kit" in drills_page  # beside the online path's drills, told apart


def test_an_offline_drill_with_one_share_fails_and_is_stored_failed(kits):
    kit_id, directory = kits.create()

    with pytest.raises(CommandError, match="DRILL FAILED: the kit did not open"):
        _drill(kits, "--shares", str(directory / "share-bob.txt"), "--out", str(kits.root / "o"))

    drill = Drill.objects.get()
    assert not drill.passed and "too_few_shares" in drill.failure
    assert OfflineKit.objects.get(pk=kit_id).state == KitState.SEALED
