"""Encryption at rest for secrets we must be able to read back (TOTP seeds, STS credentials).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`; MultiFernet so a new key can be put first
in BREAKGLASS_ENCRYPTION_KEYS while older ciphertexts still open, and `reseal` (run over every
sealed column by `manage.py rotate_encryption_keys`) moves them to the new key so the old one
can be removed.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SealBroken(Exception):
    """A ciphertext does not open with any configured key (wrong key, or tampered)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def seal(plaintext: bytes) -> str:
    return _fernet(tuple(settings.ENCRYPTION_KEYS)).encrypt(plaintext).decode()


def unseal(ciphertext: str) -> bytes:
    try:
        return _fernet(tuple(settings.ENCRYPTION_KEYS)).decrypt(ciphertext.encode())
    except InvalidToken:
        raise SealBroken("sealed value does not open with the configured keys") from None


def reseal(ciphertext: str) -> str | None:
    """The value sealed again under the newest key, or None when it already is (so a rotation
    can be re-run and resumed without rewriting what it has done). SealBroken when no configured
    key opens it."""
    keys = tuple(settings.ENCRYPTION_KEYS)
    token = ciphertext.encode()
    try:
        _fernet(keys[:1]).decrypt(token)
        return None
    except InvalidToken:
        pass
    try:
        return _fernet(keys).rotate(token).decode()
    except InvalidToken:
        raise SealBroken("sealed value does not open with the configured keys") from None
