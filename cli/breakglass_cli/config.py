"""Where the portal is and which token to send: config.toml per portal profile, env overrides."""

import ipaddress
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w

from breakglass_cli.errors import CliError, Exit
from breakglass_cli.files import private_write, readable_by_others

DEFAULT_PROFILE = "default"
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    # The XDG spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "breakglass" / "config.toml"


def cache_root() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "breakglass"


def profile_name_checked(name: str) -> str:
    if not PROFILE_NAME.match(name):
        raise CliError(
            "usage",
            f"profile names are letters, digits, '.', '_' and '-', not {name!r}",
            Exit.USAGE,
        )
    return name


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def portal_url_checked(url: str) -> str:
    """The token travels in every request: plain http only to this machine."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CliError(
            "usage", f"the portal URL must be https://host[:port], not {url!r}", Exit.USAGE
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise CliError(
            "usage",
            f"refusing to send a token over plain http to {parts.hostname}; use https://",
            Exit.USAGE,
        )
    if parts.query or parts.fragment:
        raise CliError("usage", "the portal URL takes no query or fragment", Exit.USAGE)
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class Portal:
    profile: str
    url: str
    token: str


def _read_config() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    if readable_by_others(path):
        print(f"breakglass: warning: {path} is readable by others; chmod 600 it", file=sys.stderr)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError("config", f"cannot read {path}: {exc}") from None


def profile_save(*, profile: str, url: str, token: str) -> Path:
    config = _read_config()
    profiles = config.setdefault("profiles", {})
    profiles[profile_name_checked(profile)] = {"url": portal_url_checked(url), "token": token}
    path = config_path()
    private_write(path, tomli_w.dumps(config))
    return path


def portal_resolve(profile: str) -> Portal:
    """The profile's URL and token, each overridden by BREAKGLASS_URL / BREAKGLASS_TOKEN."""
    stored = _read_config().get("profiles", {}).get(profile_name_checked(profile), {})
    url = os.environ.get("BREAKGLASS_URL") or stored.get("url")
    token = os.environ.get("BREAKGLASS_TOKEN") or stored.get("token")
    if not url or not token:
        missing = " and ".join(n for n, v in (("URL", url), ("token", token)) if not v)
        raise CliError(
            "not_configured",
            f"no portal {missing} for profile {profile!r}; run `breakglass configure` "
            "or set BREAKGLASS_URL and BREAKGLASS_TOKEN",
            Exit.USAGE,
        )
    return Portal(profile=profile, url=portal_url_checked(url), token=token)
