"""`breakglass kit open`: the two-person offline kit, for when the portal itself is down.

Needs only the kit file, `threshold` custodians' shares and AWS: no portal, no database, no
broker identity, no configuration. The shares are combined in memory, the MFA code computed,
the role assumed with SourceIdentity=offline-<kit>-<time>, the credentials printed, and a
signed record of the opening (who held which share, when, why) written beside.
"""

import base64
import getpass
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from breakglass_cli import __version__, render
from breakglass_cli.errors import CliError, Exit
from breakglass_cli.files import private_write
from breakglass_cli.kit_format import (
    Kit,
    KitSecrets,
    KitShare,
    canonical,
    kit_load,
    kit_unseal,
    record_signed,
    share_load,
)
from breakglass_cli.sts import AssumeRoleCall, StsRefused, assume_role, sts_endpoint

MIN_SESSION_MINUTES = 15  # AWS issues no session shorter than 900 s
DEFAULT_MINUTES = 60


def notice(text: str) -> None:
    click.echo(f"breakglass: {text}", err=True)


def mfa_code(seed_base32: str, at: datetime) -> str:
    # SHA-1 is what AWS virtual MFA devices use (RFC 6238's HMAC, not a collision use).
    totp = TOTP(base64.b32decode(seed_base32), 6, SHA1(), 30)  # noqa: S303
    return totp.generate(int(at.timestamp())).decode()


def session_minutes(kit: Kit, minutes: int | None) -> int:
    longest = kit["max_session_seconds"] // 60
    wanted = minutes if minutes is not None else min(DEFAULT_MINUTES, longest)
    if not MIN_SESSION_MINUTES <= wanted <= longest:
        raise CliError(
            "usage",
            f"--minutes must be {MIN_SESSION_MINUTES} to {longest} (the role's longest session)",
            Exit.USAGE,
        )
    return wanted


def _refused_hint(refused: StsRefused, minutes: int) -> str:
    """What the custodians can do about AWS's refusal."""
    if refused.code == "ValidationError" and "DurationSeconds" in refused.message:
        # The kit stores the role's longest session as it was when the kit was made.
        return (
            f"The role no longer allows {minutes} minutes (its longest session was shortened "
            f"since the kit was made): run again with a smaller --minutes; "
            "60 or fewer works on any AWS role"
        )
    return (
        "A rotated kit's shares open nothing; if this kit was opened less than 30 s ago, "
        "wait for the next MFA code and run again"
    )


def _opened(kit: Kit, secrets: KitSecrets, minutes: int, now: datetime) -> dict[str, str]:
    source_identity = f"offline-{kit['kit_id']}-{now:%Y%m%dT%H%M%SZ}"
    call = AssumeRoleCall(
        endpoint_url=sts_endpoint(kit["region"], kit.document.get("endpoint_url")),
        region=kit["region"],
        access_key_id=kit["access_key_id"],
        secret_access_key=secrets.secret_access_key,
        role_arn=kit["role_arn"],
        session_name=source_identity,
        source_identity=source_identity,
        duration_seconds=minutes * 60,
        mfa_serial=kit["mfa_serial"],
        mfa_code=mfa_code(secrets.mfa_seed, now),
    )
    try:
        credentials = assume_role(call)
    except StsRefused as refused:
        raise CliError(
            "aws_refused",
            f"AWS refused to open kit {kit['kit_id']} ({refused.code}: {refused.message}). "
            + _refused_hint(refused, minutes),
            Exit.REFUSED,
        ) from None
    except httpx.HTTPError as exc:
        raise CliError(
            "aws_unreachable", f"cannot reach STS at {call.endpoint_url}: {exc}", Exit.OTHER
        ) from None
    return {
        **credentials,
        "source_identity": source_identity,
        "region": kit["region"],
        "endpoint_url": kit.document.get("endpoint_url") or "",
    }


def _record(
    kit: Kit, shares: list[KitShare], opened: dict[str, str], reason: str, now: datetime
) -> dict:
    return {
        "kit_id": kit["kit_id"],
        "fingerprint": kit.fingerprint,
        "profile": kit["profile"],
        "role_arn": kit["role_arn"],
        "source_identity": opened["source_identity"],
        "opened_at": now.isoformat(timespec="seconds"),
        "expiration": opened["expiration"],
        "session_access_key_id": opened["access_key_id"],
        "reason": reason,
        "shares": [
            {"custodian": item.custodian, "share": item.share.index + 1, "file": item.path.name}
            for item in shares
        ],
        "operator": getpass.getuser(),
        "host": socket.gethostname(),
        "client": f"breakglass-cli {__version__}",
    }


def record_dir_ready(record_dir: Path) -> None:
    """Checked before any AWS call: an opening whose signed record cannot be written would be
    one the custodians cannot account for."""
    try:
        record_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=record_dir, prefix=".breakglass-probe-"):
            pass
    except OSError as exc:
        raise CliError(
            "record_dir",
            f"cannot write the opening's record in {record_dir} ({exc.strerror or exc}); "
            "nothing was sent to AWS",
            Exit.USAGE,
        ) from None


@click.group()
def kit() -> None:
    """The offline kit: break glass when the portal itself is down (two custodians)."""


@kit.command(name="open")
@click.argument("kit_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--share",
    "share_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="One custodian's share file; give it once per custodian present.",
)
@click.option("--minutes", type=int, help=f"Session length (default {DEFAULT_MINUTES}).")
@click.option("--reason", default="", help="Who is opening it and why, for the record.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["env", "profile", "json", "credential-process"]),
    default="env",
    show_default=True,
)
@click.option(
    "--record-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Where the signed record of the opening is written.",
)
def kit_open(
    kit_file: Path,
    share_files: tuple[Path, ...],
    minutes: int | None,
    reason: str,
    output_format: str,
    record_dir: Path,
) -> None:
    """Open KIT_FILE with custodians' shares; print credentials, write the signed record."""
    loaded = kit_load(kit_file)
    notice(f"kit {loaded['kit_id']} of {loaded['profile']}, fingerprint {loaded.fingerprint}")
    shares = [share_load(path, loaded) for path in share_files]
    length = session_minutes(loaded, minutes)
    secrets = kit_unseal(loaded, shares)
    record_dir_ready(record_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    opened = _opened(loaded, secrets, length, now)
    record = _record(loaded, shares, opened, reason.strip(), now)
    signed = record_signed(record, secrets.signing_key)
    record_path = record_dir / f"offline-opening-{opened['source_identity'][8:]}.json"
    private_write(record_path, canonical(signed).decode() + "\n", own_directory=False)
    notice(f"opened as {opened['source_identity']} until {render.moment(opened['expiration'])}")
    notice(f"signed record written to {record_path}: give it to security (kit_import)")
    credentials = {
        "access_key_id": opened["access_key_id"],
        "secret_access_key": opened["secret_access_key"],
        "session_token": opened["session_token"],
        "expiration": opened["expiration"],
        "region": opened["region"],
        "endpoint_url": opened["endpoint_url"] or None,
    }
    if output_format == "json":
        render.print_json(credentials)
    elif output_format == "env":
        click.echo(render.credentials_env(credentials))
    elif output_format == "profile":
        click.echo(render.credentials_profile(credentials, loaded["kit_id"]))
    else:
        click.echo(render.credential_process_json(credentials))
