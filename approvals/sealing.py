"""Encryption at rest for secrets we must be able to read back (TOTP seeds, STS credentials).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`; MultiFernet so a new key can be put first
in BREAKGLASS_ENCRYPTION_KEYS while older ciphertexts still open.
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
