"""The offline kit's files, reading side: the sealed kit-<id>.json and the custodians' shares
(written by the portal's `manage.py kit_create`, approvals/offline_kit_format.py).

Everything here happens before any network call: a kit or share that does not check out stops
the opening with a clear message and AWS never hears of it.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from shamir_mnemonic import MnemonicError, Share, combine_mnemonics

from breakglass_cli.errors import CliError, Exit

KIT_FORMAT = "breakglass-offline-kit/1"
RECORD_FORMAT = "breakglass-offline-opening/1"
SEALING_INFO = b"breakglass offline kit: sealing key"
RECORD_INFO = b"breakglass offline kit: record signing key"
SHARE_BEGIN = "-----BEGIN BREAKGLASS SHARE-----"
SHARE_END = "-----END BREAKGLASS SHARE-----"
_REQUIRED = {
    "format": str,
    "kit_id": str,
    "profile": str,
    "account_id": str,
    "region": str,
    "role_arn": str,
    "principal_arn": str,
    "access_key_id": str,
    "mfa_serial": str,
    "max_session_seconds": int,
    "custodians": list,
    "threshold": int,
    "share_set": int,
    "record_public_key": str,
    "sealed": dict,
}


@dataclass(frozen=True)
class Kit:
    document: dict[str, Any]
    fingerprint: str

    def __getitem__(self, name: str) -> Any:
        return self.document[name]

    @property
    def header(self) -> dict[str, Any]:
        """Everything but the sealed part: authenticated by the seal."""
        return {key: value for key, value in self.document.items() if key != "sealed"}


@dataclass(frozen=True)
class KitShare:
    path: Path
    custodian: str  # as the share file says, else the file's name
    share: Share
    mnemonic: str


@dataclass(frozen=True)
class KitSecrets:
    secret_access_key: str
    mfa_seed: str
    signing_key: Ed25519PrivateKey


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _derived(master_secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(master_secret)


def kit_fingerprint(document: dict[str, Any]) -> str:
    digest = hashlib.sha256(canonical(document)).hexdigest()[:20]
    return "-".join(digest[i : i + 4] for i in range(0, 20, 4))


def kit_load(path: Path) -> Kit:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError("usage", f"cannot read the kit {path}: {exc.strerror}", Exit.USAGE) from None
    except ValueError:
        raise CliError("kit_invalid", f"{path} is not a kit file (not JSON)", Exit.USAGE) from None
    if not isinstance(document, dict) or document.get("format") != KIT_FORMAT:
        raise CliError("kit_invalid", f"{path} is not a {KIT_FORMAT} kit file", Exit.USAGE)
    for name, kind in _REQUIRED.items():
        if not isinstance(document.get(name), kind):
            raise CliError("kit_invalid", f"{path} lacks a valid {name!r}", Exit.USAGE)
    return Kit(document, kit_fingerprint(document))


def _share_fields(text: str) -> dict[str, str]:
    """key: value lines between the share markers ({} when the file holds bare words)."""
    if SHARE_BEGIN not in text:
        return {}
    block = text.split(SHARE_BEGIN, 1)[1].split(SHARE_END, 1)[0]
    fields = {}
    for line in block.strip().splitlines():
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return fields


def share_load(path: Path, kit: Kit) -> KitShare:
    """A custodian's share of *this* kit: its page, or the words typed from it into a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        message = f"cannot read the share {path}: {exc.strerror}"
        raise CliError("usage", message, Exit.USAGE) from None
    fields = _share_fields(text)
    declared = fields.get("kit")
    if declared and declared != kit["kit_id"]:
        raise CliError(
            "wrong_kit",
            f"{path.name} is a share of kit {declared}, not of kit {kit['kit_id']}; "
            "nothing was sent to AWS",
            Exit.REFUSED,
        )
    if fields.get("fingerprint") and fields["fingerprint"] != kit.fingerprint:
        raise CliError(
            "kit_altered",
            f"{path.name} was cut for kit {kit['kit_id']} with fingerprint "
            f"{fields['fingerprint']}, but this kit file's fingerprint is {kit.fingerprint}: the "
            "kit file was changed or is another copy; nothing was sent to AWS",
            Exit.REFUSED,
        )
    mnemonic = " ".join((fields.get("words") or text).lower().split())
    try:
        share = Share.from_mnemonic(mnemonic)
    except MnemonicError as exc:
        raise CliError(
            "share_invalid", f"{path.name} is not a readable share: {exc}", Exit.USAGE
        ) from None
    if share.identifier != kit["share_set"]:
        raise CliError(
            "wrong_kit",
            f"{path.name} is a share of another kit, not of kit {kit['kit_id']}; "
            "nothing was sent to AWS",
            Exit.REFUSED,
        )
    return KitShare(path, fields.get("custodian") or path.stem, share, mnemonic)


def kit_unseal(kit: Kit, shares: list[KitShare]) -> KitSecrets:
    """Recover the master secret in memory and open the seal, or say exactly why not."""
    indexes = [item.share.index for item in shares]
    if len(set(indexes)) != len(indexes):
        raise CliError("share_repeated", "the same share was given twice", Exit.USAGE)
    if len(shares) < kit["threshold"]:
        raise CliError(
            "too_few_shares",
            f"{len(shares)} share(s) given; kit {kit['kit_id']} needs {kit['threshold']} "
            f"custodians' shares (custodians: {', '.join(kit['custodians'])}); "
            "nothing was sent to AWS",
            Exit.REFUSED,
        )
    try:
        master = combine_mnemonics([item.mnemonic for item in shares])
    except MnemonicError as exc:
        message = f"the shares do not combine: {exc}"
        raise CliError("shares_invalid", message, Exit.REFUSED) from None
    signing = Ed25519PrivateKey.from_private_bytes(_derived(master, RECORD_INFO))
    public = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    sealed = kit["sealed"]
    try:
        plaintext = AESGCM(_derived(master, SEALING_INFO)).decrypt(
            base64.b64decode(sealed["nonce"]),
            base64.b64decode(sealed["ciphertext"]),
            canonical(kit.header),
        )
        secrets = json.loads(plaintext)
    except (InvalidTag, KeyError, TypeError, ValueError):
        secrets = None
    if secrets is None or public != kit["record_public_key"]:
        raise CliError(
            "kit_altered",
            f"kit {kit['kit_id']} does not open with these shares: the kit file was altered or "
            "is not the one they seal; nothing was sent to AWS",
            Exit.REFUSED,
        )
    return KitSecrets(secrets["secret_access_key"], secrets["mfa_seed"], signing)


def record_signed(record: dict[str, Any], signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The local record, signed with the kit's record key (the portal holds its public half)."""
    signature = signing_key.sign(canonical(record))
    return {
        "format": RECORD_FORMAT,
        "record": record,
        "signature": base64.b64encode(signature).decode(),
    }
