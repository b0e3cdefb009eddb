"""Files only their owner can read: the config (a token) and the credentials cache (keys)."""

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # An existing directory may have been created wider by something else.
    path.chmod(PRIVATE_DIR_MODE)
    return path


def private_write(path: Path, text: str, *, own_directory: bool = True) -> None:
    """Write atomically, mode 0600 from the first byte (never a moment readable by others).
    own_directory: the directory is ours, made 0700; otherwise (a custodian's working
    directory, say) it must exist and keeps its mode."""
    if own_directory:
        private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o077)
