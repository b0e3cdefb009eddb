"""Only the kit file and the shares can rebuild the offline key: a search of the whole database,
every log line (botocore's debug output included), the portal's var directory and the opening's
record and the broker's queues find neither the secret access key, nor the MFA seed, nor a
share's words, nor the master secret or the keys derived from it."""

import base64
import io
import logging
from pathlib import Path

import pytest
import redis
from breakglass_cli.kit_format import kit_load, kit_unseal, share_load
from django.conf import settings
from django.core.management import call_command
from shamir_mnemonic import combine_mnemonics

from approvals.models import OfflineKit
from approvals.offline_kit_format import RECORD_INFO, SEALING_INFO, derived_key
from approvals.services.watch import watch_poll
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _encodings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b32encode(secret).decode().rstrip("="),
    ]


def _secrets_of(directory: Path, kit_id: str) -> list[str]:
    """What rebuilds the key with the kit file: the key and seed themselves, the shares' words,
    the master secret they combine to, and the keys derived from it (in every usual encoding)."""
    kit = kit_load(directory / f"kit-{kit_id}.json")
    shares = [share_load(directory / f"share-{n}.txt", kit) for n in ("alice", "bob")]
    opened = kit_unseal(kit, shares)
    master = combine_mnemonics([share.mnemonic for share in shares])
    derived = [derived_key(master, info) for info in (SEALING_INFO, RECORD_INFO)]
    return [
        opened.secret_access_key,
        opened.mfa_seed,
        *(share.mnemonic for share in shares),
        *(text for secret in (master, *derived) for text in _encodings(secret)),
    ]


def _broker_text() -> str:
    """Every message waiting on the test broker (Celery's queues are Redis lists)."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        return ""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    texts = []
    for key in broker.scan_iter(count=1000):
        if broker.type(key) == b"list":
            texts += [item.decode("utf-8", "replace") for item in broker.lrange(key, 0, -1)]
    return "\n".join(texts)


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
        "broker": _broker_text(),
    }
    assert kit_id in haystacks["database"] and kit_id in haystacks["opening record"]  # real search
    secrets = _secrets_of(directory, kit_id) + _secrets_of(new_directory, new_id)
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret of the kit is in the {where}"
            assert secret.lower() not in text.lower(), f"a secret of the kit is in the {where}"
