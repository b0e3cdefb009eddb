"""Only the kit file and the shares can rebuild the offline key: a search of the whole database,
every log line (botocore's debug output included), the portal's var directory and the opening's
record finds neither the secret access key, nor the MFA seed, nor a share's words."""

import io
import logging
from pathlib import Path

import pytest
from breakglass_cli.kit_format import kit_load, kit_unseal, share_load
from django.conf import settings
from django.core.management import call_command

from approvals.models import OfflineKit
from approvals.services.watch import watch_poll
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _secrets_of(directory: Path, kit_id: str) -> list[str]:
    kit = kit_load(directory / f"kit-{kit_id}.json")
    shares = [share_load(directory / f"share-{n}.txt", kit) for n in ("alice", "bob")]
    opened = kit_unseal(kit, shares)
    return [opened.secret_access_key, opened.mfa_seed, *(share.mnemonic for share in shares)]


def _files_text(root: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    )


def test_nothing_but_the_kit_and_its_shares_holds_the_key_or_the_mfa_seed(kits, caplog):
    caplog.set_level(logging.DEBUG)  # the most a portal operator could turn on
    kit_id, directory = kits.create()
    opened = kits.open(
        directory / f"kit-{kit_id}.json",
        directory / "share-alice.txt",
        directory / "share-bob.txt",
        args=("--reason", "INC-9: drill of the secrets search"),
    )
    assert opened.returncode == 0, opened.stderr
    wait_until(
        lambda: watch_poll(wait_seconds=1) and OfflineKit.objects.get(pk=kit_id).openings.exists(),
        timeout=30,
        interval=0,
        what="the portal reconciling the opening",
    )
    [record] = (kits.root / "custodian-home").glob("offline-opening-*.json")
    call_command("kit_import", str(record), stdout=io.StringIO())
    new_id, new_directory = kits.rotate(kit_id, out="rotated")
    database = io.StringIO()
    call_command("dumpdata", stdout=database)

    haystacks = {
        "database": database.getvalue(),
        "logs": caplog.text,
        "client output": opened.stderr,
        "var directory": _files_text(Path(settings.VAR_DIR)),
        "opening record": record.read_text(),
    }
    assert kit_id in haystacks["database"] and kit_id in haystacks["opening record"]  # real search
    secrets = _secrets_of(directory, kit_id) + _secrets_of(new_directory, new_id)
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret of the kit is in the {where}"
            assert secret.lower() not in text.lower(), f"a secret of the kit is in the {where}"
