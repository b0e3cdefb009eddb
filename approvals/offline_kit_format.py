"""The offline kit's files, writing side (issue 18): the sealed kit JSON and one share per
custodian. The command-line client (`breakglass kit open`, cli/breakglass_cli/kit_format.py)
reads them with no portal at all; tests/offline round-trips the two.

A random 256-bit master secret is split with SLIP-39 (`shamir-mnemonic`, no field arithmetic of
our own). Two keys are derived from it with HKDF-SHA256: an AES-256-GCM key that seals the
offline user's secret access key and MFA seed, with every other field of the kit as associated
data (so a changed endpoint, role or region fails to open), and an Ed25519 key that signs the
local record of each opening (its public half is in the kit and in the portal).
"""

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from shamir_mnemonic import Share, generate_mnemonics

KIT_FORMAT = "breakglass-offline-kit/1"
RECORD_FORMAT = "breakglass-offline-opening/1"
SEALING_INFO = b"breakglass offline kit: sealing key"
RECORD_INFO = b"breakglass offline kit: record signing key"
SHARE_BEGIN = "-----BEGIN BREAKGLASS SHARE-----"
SHARE_END = "-----END BREAKGLASS SHARE-----"
CUSTODIAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
MIN_THRESHOLD = 2
MAX_CUSTODIANS = 16

PROCEDURE = """\
WHEN THE PORTAL IS DOWN: opening the offline kit (two people, one page)
1. Only when the portal cannot grant access (it, its database or its region is down) and the
   incident cannot wait. Agree on it with another custodian; {threshold} custodians must bring
   their shares. Each of you keeps your own share in your own hands.
2. On one trusted machine with the `breakglass` client installed, get the kit file
   kit-{kit_id}.json (runbook, repository or safe) and check its fingerprint when the client
   prints it: {fingerprint}.
3. Each custodian puts their share in a file (this page's file, or the 33 words typed in order).
4. Run, with your names in the reason:
     breakglass kit open kit-{kit_id}.json --share share-A.txt --share share-B.txt \\
       --minutes 60 --reason "INC-123: portal down, who and why" --format env
   It prints credentials for {role_arn} and writes a signed record of the opening
   (offline-opening-{kit_id}-*.json) in the current directory. Keep that file.
5. Use the credentials for the incident only; they end on their own.
6. When the portal is back: give the record to the security team
   (manage.py kit_import RECORD). The portal has already raised an alarm and opened an
   incident record of the opening; the kit is marked exposed and must be rotated
   (manage.py kit_rotate {kit_id}), which gives every custodian a new share. Destroy the old
   one then: it opens nothing any more.
Shares of different kits do not combine; one share alone opens nothing.
"""


@dataclass(frozen=True)
class KitSpec:
    """What the kit says in the clear (all of it authenticated by the seal)."""

    kit_id: str
    profile: str
    account_id: str
    region: str
    role_arn: str
    principal_arn: str
    access_key_id: str
    mfa_serial: str
    max_session_seconds: int
    endpoint_url: str | None
    custodians: tuple[str, ...]
    threshold: int
    created_at: str


@dataclass(frozen=True)
class SealedKit:
    document: dict[str, Any]  # the kit-<id>.json content
    fingerprint: str
    record_public_key: str  # hex, verifies the signed records of openings
    shares: dict[str, str]  # custodian -> share file text


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def derived_key(master_secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(master_secret)


def kit_fingerprint(document: dict[str, Any]) -> str:
    """SHA-256 of the whole kit, 80 bits in groups of four: short enough to read aloud."""
    digest = hashlib.sha256(canonical(document)).hexdigest()[:20]
    return "-".join(digest[i : i + 4] for i in range(0, 20, 4))


def custodians_check(custodians: list[str], threshold: int) -> None:
    """ValueError saying what is wrong with the custodians or the threshold."""
    bad = [name for name in custodians if not CUSTODIAN_NAME.match(name)]
    if bad:
        raise ValueError(
            f"custodian names are 1-40 letters, digits, '.', '_' or '-' (not {bad[0]!r})"
        )
    if len({name.lower() for name in custodians}) != len(custodians):
        raise ValueError("each custodian is named once")
    if not MIN_THRESHOLD <= len(custodians) <= MAX_CUSTODIANS:
        raise ValueError(f"a kit has {MIN_THRESHOLD} to {MAX_CUSTODIANS} custodians")
    if not MIN_THRESHOLD <= threshold <= len(custodians):
        raise ValueError(
            f"the threshold is at least {MIN_THRESHOLD} (two people) and at most the number of "
            f"custodians ({len(custodians)})"
        )


def kit_seal(spec: KitSpec, *, secret_access_key: str, mfa_seed: str) -> SealedKit:
    """Seal the secrets under a fresh master secret and split it among the custodians."""
    custodians_check(list(spec.custodians), spec.threshold)
    master = os.urandom(32)
    mnemonics = generate_mnemonics(1, [(spec.threshold, len(spec.custodians))], master)[0]
    signing = Ed25519PrivateKey.from_private_bytes(derived_key(master, RECORD_INFO))
    public_key = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    header = {
        "format": KIT_FORMAT,
        **{name: getattr(spec, name) for name in spec.__dataclass_fields__},
        "custodians": list(spec.custodians),
        "share_set": Share.from_mnemonic(mnemonics[0]).identifier,
        "record_public_key": public_key,
    }
    nonce = os.urandom(12)
    plaintext = canonical({"secret_access_key": secret_access_key, "mfa_seed": mfa_seed})
    ciphertext = AESGCM(derived_key(master, SEALING_INFO)).encrypt(
        nonce, plaintext, canonical(header)
    )
    document = {
        **header,
        "sealed": {
            "algorithm": "AES-256-GCM",
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        },
    }
    fingerprint = kit_fingerprint(document)
    shares = {
        custodian: share_text(spec, fingerprint, custodian, index, mnemonic)
        for index, (custodian, mnemonic) in enumerate(
            zip(spec.custodians, mnemonics, strict=True), start=1
        )
    }
    return SealedKit(document, fingerprint, public_key, shares)


def share_text(spec: KitSpec, fingerprint: str, custodian: str, index: int, mnemonic: str) -> str:
    """One custodian's page: who, which kit, the words, and the procedure."""
    words = mnemonic.split()
    numbered = [f"{n:2d} {word:<10}" for n, word in enumerate(words, start=1)]
    rows = ["  " + "".join(numbered[i : i + 6]).rstrip() for i in range(0, len(numbered), 6)]
    return "\n".join(
        [
            f"BREAK-GLASS OFFLINE KIT: SHARE OF {custodian}",
            f"Kit id:       {spec.kit_id}",
            f"Fingerprint:  {fingerprint}",
            f"Profile:      {spec.profile}: {spec.role_arn} ({spec.region})",
            f"This share:   {index} of {len(spec.custodians)}; any {spec.threshold} open the kit,"
            " one alone opens nothing",
            f"Custodians:   {', '.join(spec.custodians)}",
            f"Created:      {spec.created_at}",
            "",
            f"Your share (SLIP-39, {len(words)} words, in this order):",
            *rows,
            "",
            SHARE_BEGIN,
            f"kit: {spec.kit_id}",
            f"fingerprint: {fingerprint}",
            f"custodian: {custodian}",
            f"words: {mnemonic}",
            SHARE_END,
            "",
            PROCEDURE.format(
                threshold=spec.threshold,
                kit_id=spec.kit_id,
                fingerprint=fingerprint,
                role_arn=spec.role_arn,
            ),
        ]
    )


def record_signature_valid(signed: dict[str, Any], public_key_hex: str) -> bool:
    """Whether `signed["record"]` is exactly what the kit's record key signed."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(
            base64.b64decode(signed["signature"], validate=True), canonical(signed["record"])
        )
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True
