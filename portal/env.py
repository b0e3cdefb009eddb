"""Strict readers for settings that come from the environment.

A malformed value stops the process at start-up with the variable's name in the message: a typo
in a security setting must never fall back to a default silently.
"""

import binascii
import os
from pathlib import Path
from typing import overload

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured


class ImproperlyConfiguredEnv(ImproperlyConfigured):
    """An environment variable holds a value we refuse to guess about."""


# With a string default the result is always a string; without one it may be None.
@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable, or the contents of the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfiguredEnv(f"{name}_FILE: cannot read {file_name}: {exc}") from exc
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value in ("1", "true", "True", "yes"):
        return True
    if value in ("0", "false", "False", "no"):
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}, not {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_fernet_keys(name: str) -> list[str]:
    """Fernet keys separated by commas or spaces, newest first; [] when unset.

    Each must be what `Fernet.generate_key()` makes (32 bytes, URL-safe base64). The message names
    the variable and the key's position, never the key."""
    keys = (env_str(name) or "").replace(",", " ").split()
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, binascii.Error):
            raise ImproperlyConfiguredEnv(
                f"{name}: key {position} of {len(keys)} is not a Fernet key (32 bytes, URL-safe "
                f"base64; make one with python -c 'from cryptography.fernet import Fernet; "
                f"print(Fernet.generate_key().decode())')"
            ) from None
    return keys
