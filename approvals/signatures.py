"""Ed25519 signatures with a key that is not in the database.

Approvals, timeline seals and checkpoints (and anything else that must survive a database writer)
are signed here. A signature covers `signed_message(purpose, payload)`: a fixed prefix, the
purpose, a newline and the canonical JSON of the payload, so a signature made for one purpose can
never be passed off as another. A verifier needs only the public keys (`manage.py signing_keys`).

Keys come from BREAKGLASS_SIGNING_KEY (newest first: the first signs, every one verifies) and
BREAKGLASS_SIGNING_PUBLIC_KEYS (retired keys whose signatures must still verify). A key id is the
first 16 hex digits of the SHA-256 of the raw public key, so it can never name the wrong key.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

ALGORITHM = "Ed25519"
MESSAGE_PREFIX = b"breakglass-portal/v1\n"


class SigningKeyError(ValueError):
    """A configured key cannot be used (the message never contains the key)."""


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64 (standard alphabet, padded) of the 64-byte signature

    def as_dict(self) -> dict[str, str]:
        return {"key_id": self.key_id, "value": self.value}


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    public_key: str  # base64 of the 32 raw bytes
    signs: bool  # the key new signatures are made with

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": ALGORITHM,
            "public_key": self.public_key,
            "signs": self.signs,
        }


def canonical_json(payload: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one byte form of a payload."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def signed_message(purpose: str, payload: Any) -> bytes:
    return MESSAGE_PREFIX + purpose.encode() + b"\n" + canonical_json(payload)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def _decode_32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SigningKeyError(f"{what} is not 32 bytes of base64")
    return raw


def private_key_parse(text: str, *, position: int = 1) -> Ed25519PrivateKey:
    """One Ed25519 private key: the base64 (or base64url) of its 32-byte seed."""
    return Ed25519PrivateKey.from_private_bytes(_decode_32(text.strip(), f"key {position}"))


def public_key_parse(text: str, *, position: int = 1) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_decode_32(text.strip(), f"public key {position}"))


def keys_split(value: str) -> list[str]:
    return value.replace(",", " ").split()


def key_generate() -> str:
    """A new private key in the form BREAKGLASS_SIGNING_KEY takes."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class _Keyring:
    signing: tuple[str, Ed25519PrivateKey] | None
    verifying: dict[str, Ed25519PublicKey]


@lru_cache(maxsize=8)
def _keyring(private: tuple[str, ...], public: tuple[str, ...]) -> _Keyring:
    verifying: dict[str, Ed25519PublicKey] = {}
    signing: tuple[str, Ed25519PrivateKey] | None = None
    for position, text in enumerate(private, start=1):
        key = private_key_parse(text, position=position)
        key_id = key_id_of(key.public_key())
        verifying[key_id] = key.public_key()
        if signing is None:
            signing = (key_id, key)
    for position, text in enumerate(public, start=1):
        public_key = public_key_parse(text, position=position)
        verifying.setdefault(key_id_of(public_key), public_key)
    return _Keyring(signing, verifying)


def _configured() -> _Keyring:
    return _keyring(
        tuple(settings.SIGNING_KEYS), tuple(getattr(settings, "SIGNING_PUBLIC_KEYS", ()))
    )


def sign(purpose: str, payload: Any) -> Signature:
    """Sign `payload` for `purpose` with the newest configured key."""
    signing = _configured().signing
    if signing is None:
        raise SigningKeyError("no signing key is configured (BREAKGLASS_SIGNING_KEY)")
    key_id, key = signing
    value = key.sign(signed_message(purpose, payload))
    return Signature(key_id=key_id, value=base64.b64encode(value).decode())


def verify(purpose: str, payload: Any, key_id: str, value: str) -> bool:
    """True only if a configured key with this id signed exactly this payload for this purpose."""
    public_key = _configured().verifying.get(key_id or "")
    if public_key is None or not value:
        return False
    try:
        raw = base64.b64decode(value, validate=True)
        public_key.verify(raw, signed_message(purpose, payload))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def public_keys() -> list[PublicKey]:
    """Every key a signature may be checked with, the signing one first."""
    keyring = _configured()
    signing_id = keyring.signing[0] if keyring.signing else None
    ordered = sorted(keyring.verifying.items(), key=lambda item: item[0] != signing_id)
    return [
        PublicKey(
            key_id=key_id,
            public_key=base64.b64encode(_raw_public(key)).decode(),
            signs=key_id == signing_id,
        )
        for key_id, key in ordered
    ]
