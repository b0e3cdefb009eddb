"""The portal's own keys, for portal/settings.py: the Django secret key, the credential
encryption keys and the approval signing keys.

Each comes from its environment variable (or the variable's _FILE twin). Production refuses to
start without one; development keeps a generated one under var/ instead.
"""

import base64
from collections.abc import Callable
from pathlib import Path

from django.core.management.utils import get_random_secret_key

from portal.env import ImproperlyConfiguredEnv, env_fernet_keys, env_str


def _development_secret(var_dir: Path, file_name: str, generate: Callable[[], str]) -> str:
    """A secret kept under var/ so development restarts keep sessions and ciphertexts valid."""
    path = var_dir / file_name
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(generate())
        path.chmod(0o600)
    return path.read_text().strip()


def _generate_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _generate_signing_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def secret_key_setting(production: bool, var_dir: Path) -> str:
    """DJANGO_SECRET_KEY."""
    secret_key = env_str("DJANGO_SECRET_KEY")
    if secret_key is None:
        if production:
            raise ImproperlyConfiguredEnv(
                "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required"
            )
        secret_key = _development_secret(var_dir, "secret.key", get_random_secret_key)
    return secret_key


def encryption_keys_setting(production: bool, var_dir: Path) -> list[str]:
    """Fernet keys, newest first; older keys still decrypt so keys can be rotated (new key first,
    `manage.py rotate_encryption_keys`, then drop the old one). Checked at start-up, so a
    malformed key stops `manage.py check` instead of failing the first encryption with a 500."""
    keys = env_fernet_keys("BREAKGLASS_ENCRYPTION_KEYS")
    if not keys:
        if production:
            raise ImproperlyConfiguredEnv(
                "BREAKGLASS_ENCRYPTION_KEYS (or BREAKGLASS_ENCRYPTION_KEYS_FILE) is required"
            )
        keys = [_development_secret(var_dir, "encryption.key", _generate_fernet_key)]
    return keys


# Ed25519 keys that sign approvals and timeline checkpoints (approvals/signatures.py), newest
# first: the first signs, every one verifies. Kept out of the database, so a database writer can
# neither forge an approval nor re-sign a rewritten record. Retired keys' public halves go in
# BREAKGLASS_SIGNING_PUBLIC_KEYS so their signatures still verify.
def env_signing_keys(name: str) -> list[str]:
    """Base64 of 32 raw bytes each; the message names the variable and position, never the key."""
    keys = (env_str(name) or "").replace(",", " ").split()
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.b64decode(key + "=" * (-len(key) % 4), altchars=b"-_", validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ImproperlyConfiguredEnv(
                f"{name}: key {position} of {len(keys)} is not an Ed25519 key (32 bytes of "
                "base64; make one with python manage.py signing_keys --generate)"
            )
    return keys


def signing_keys_setting(production: bool, var_dir: Path) -> list[str]:
    """BREAKGLASS_SIGNING_KEY: the signing keys, the first of which signs."""
    keys = env_signing_keys("BREAKGLASS_SIGNING_KEY")
    if not keys:
        if production:
            raise ImproperlyConfiguredEnv(
                "BREAKGLASS_SIGNING_KEY (or BREAKGLASS_SIGNING_KEY_FILE) is required"
            )
        keys = [_development_secret(var_dir, "signing.key", _generate_signing_key)]
    return keys
