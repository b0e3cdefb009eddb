"""`breakglass`: translate arguments into REST API calls and render the answers."""

import getpass
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC

import click
from rich.console import Console

from breakglass_cli import __version__, render
from breakglass_cli.api import Api
from breakglass_cli.cache import CredentialCache, parse_time
from breakglass_cli.config import (
    DEFAULT_PROFILE,
    Portal,
    portal_resolve,
    portal_url_checked,
    profile_name_checked,
    profile_save,
)
from breakglass_cli.errors import CliError, Exit

STATUSES = [
    "pending",
    "approved",
    "activating",
    "active",
    "revoking",
    "revoked",
    "rejected",
    "cancelled",
    "timed_out",
    "failed",
]
# A request that stops in one of these will not become active any more.
NEVER_ACTIVE = {"revoking", "revoked", "rejected", "cancelled", "timed_out", "failed"}
# Access is gone (or was never given).
ACCESS_GONE = {"revoked", "rejected", "cancelled", "timed_out"}
DEFAULT_WAIT_SECONDS = 3600
MIN_POLL_SECONDS = 0.2

stderr = Console(stderr=True, highlight=False)


def notice(text: str) -> None:
    click.echo(f"breakglass: {text}", err=True)


def poll_seconds() -> float:
    try:
        return max(MIN_POLL_SECONDS, float(os.environ.get("BREAKGLASS_POLL_SECONDS", "2")))
    except ValueError:
        raise CliError("usage", "BREAKGLASS_POLL_SECONDS must be a number", Exit.USAGE) from None


def request_id_checked(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise CliError("usage", f"request ids are UUIDs, not {value!r}", Exit.USAGE) from None


class State:
    """Per invocation: which portal profile, and one API client made on first use."""

    def __init__(self, profile: str) -> None:
        self.profile = profile_name_checked(profile)
        self._api: Api | None = None

    @property
    def portal(self) -> Portal:
        return self.api.portal

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(portal_resolve(self.profile), notice=notice)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def cache(self, request_id: str) -> CredentialCache:
        return CredentialCache(profile=self.profile, request_id=request_id)

    def get_request(self, request_id: str) -> dict:
        request = self.api.call("GET", f"/api/v1/requests/{request_id}/")
        if request["status"] in NEVER_ACTIVE:
            # Whatever we learned it from, credentials of an ended request must not be served.
            self.cache(request_id).drop()
        return request

    def link(self, request_id: str) -> str:
        return f"{self.portal.url}/requests/{request_id}/"


pass_state = click.make_pass_decorator(State)


def ask_on_terminal(prompt: str, *, when_no_terminal: str) -> str:
    """Read a secret from the terminal itself with echo off: never argv, stdin or history."""
    if os.name != "nt":
        try:
            with open("/dev/tty", "rb"):
                pass
        except OSError:
            # getpass would fall back to stdin, with echo: refuse instead.
            raise CliError("no_terminal", when_no_terminal, Exit.USAGE) from None
    answer = getpass.getpass(prompt).strip()
    if not answer:
        raise CliError("usage", f"nothing entered at {prompt.strip()!r}", Exit.USAGE)
    return answer


def otp_code(given: str | None, doing: str) -> str:
    """--code, then BREAKGLASS_OTP_CODE, then a prompt on the terminal."""
    code = given or os.environ.get("BREAKGLASS_OTP_CODE")
    if code:
        return code.strip()
    return ask_on_terminal(
        f"TOTP code to {doing}: ",
        when_no_terminal=f"a TOTP code is needed to {doing} and there is no terminal to ask on; "
        "pass --code or set BREAKGLASS_OTP_CODE",
    )


def ended_error(request: dict) -> CliError:
    """Why a request has no usable credentials, in words and an exit code."""
    request_id, status = request["id"], request["status"]
    if status in ("pending", "approved", "activating"):
        return CliError(
            "not_active",
            f"request {request_id} is {status} (signatures {render.signatures(request)}); "
            f"credentials exist once it is active: breakglass wait {request_id}",
            Exit.OTHER,
        )
    if status in ("revoking", "revoked"):
        expired = (
            request.get("expires_at")
            and request.get("revoked_at")
            and parse_time(request["revoked_at"]) >= parse_time(request["expires_at"])
        )
        if expired:
            return CliError(
                "expired",
                f"request {request_id} expired at {render.moment(request['expires_at'])}; "
                "its credentials no longer work, request access again",
                Exit.TIMED_OUT,
            )
        since = request.get("revoked_at") or request.get("revoke_requested_at")
        return CliError(
            "revoked",
            f"request {request_id} was revoked at {render.moment(since)}; "
            "its credentials no longer work, request access again",
            Exit.REFUSED,
        )
    if status == "timed_out":
        return CliError(
            "timed_out",
            f"request {request_id} timed out waiting for signatures",
            Exit.TIMED_OUT,
        )
    if status == "failed":
        return CliError(
            "failed", f"request {request_id} failed: {request.get('failure_reason') or '?'}"
        )
    return CliError(status, f"request {request_id} is {status}", Exit.REFUSED)


def credentials_obtain(state: State, request_id: str, code: str | None) -> dict:
    """Cached credentials with no network at all; otherwise check, ask for a code, reveal."""
    cache = state.cache(request_id)
    cached = cache.load()
    if cached is not None:
        return cached
    request = state.get_request(request_id)
    if request["status"] != "active":
        raise ended_error(request)
    secret = otp_code(code, f"reveal the credentials of request {request_id}")
    credentials = state.api.call(
        "POST", f"/api/v1/requests/{request_id}/credentials/", body={"otp": secret}
    )
    cache.store(credentials)
    return credentials


def watch(
    state: State, request_id: str, *, finished: Callable[[dict], bool], timeout: float
) -> dict:
    """Poll the request, one progress line on stderr per change, until `finished` or timeout."""
    started = time.monotonic()
    interval = poll_seconds()
    last_line = ""
    with stderr.status("waiting…") as spinner:
        while True:
            request = state.get_request(request_id)
            seconds = time.monotonic() - started
            line = render.progress_line(request, seconds)
            key = line.rsplit(" · ", 1)[0]
            if key != last_line:
                stderr.print(line)
                last_line = key
            spinner.update(line)
            if finished(request):
                return request
            if seconds + interval > timeout:
                raise CliError(
                    "wait_timed_out",
                    f"request {request_id} is still {request['status']} after {int(seconds)} s",
                    Exit.TIMED_OUT,
                )
            time.sleep(interval)


def outcome_of_wait_for_active(request: dict) -> None:
    if request["status"] != "active":
        raise ended_error(request)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--profile",
    "portal_profile",
    envvar="BREAKGLASS_PROFILE",
    default=DEFAULT_PROFILE,
    show_default=True,
    help="Which configured portal to use (env BREAKGLASS_PROFILE).",
)
@click.version_option(__version__, prog_name="breakglass")
@click.pass_context
def cli(ctx: click.Context, portal_profile: str) -> None:
    """Break-glass AWS access from the terminal.

    Exit codes: 0 ok, 2 usage, 3 refused or forbidden, 4 not found, 5 timed out or expired,
    1 anything else.
    """
    ctx.obj = State(portal_profile)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.option("--url", required=True, help="The portal, e.g. https://breakglass.example.com")
@click.option("--token", help="A personal token (bgp_…); asked on the terminal when omitted.")
@click.option("--profile", "portal_profile", help="Save under this portal profile name.")
@click.option("--no-verify", is_flag=True, help="Save without checking the token with the portal.")
@pass_state
def configure(
    state: State, url: str, token: str | None, portal_profile: str | None, no_verify: bool
) -> None:
    """Save the portal URL and a personal token (config.toml, mode 0600)."""
    profile = profile_name_checked(portal_profile or state.profile)
    url = portal_url_checked(url)
    if not token:
        token = ask_on_terminal(
            "Personal token (bgp_…): ",
            when_no_terminal="no terminal to ask for the token on; pass --token",
        )
    who = ""
    if not no_verify:
        api = Api(Portal(profile=profile, url=url, token=token), notice=notice)
        try:
            me = api.call("GET", "/api/v1/me/")
        finally:
            api.close()
        who = f" for {me['name']}"
    path = profile_save(profile=profile, url=url, token=token)
    click.echo(f"Saved portal profile {profile!r}{who} ({url}) in {path}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The API's objects, for scripts.")
@pass_state
def profiles(state: State, as_json: bool) -> None:
    """The access profiles you may request."""
    found = state.api.call("GET", "/api/v1/profiles/")
    if as_json:
        render.print_json(found)
    else:
        render.profiles_table(Console(), found)


@cli.command()
@click.option("--profile", "access_profile", required=True, help="Access profile slug.")
@click.option("--ticket", required=True, help="Incident or change ticket, e.g. INC-1234.")
@click.option("--minutes", type=click.IntRange(min=1), required=True, help="How long.")
@click.option("--justification", required=True, help="Why, for the approvers and the record.")
@click.option("--wait", "wait_for_it", is_flag=True, help="Follow it until active or ended.")
@click.option("--timeout", type=click.IntRange(min=1), default=DEFAULT_WAIT_SECONDS)
@click.option("--json", "as_json", is_flag=True, help="The request object, for scripts.")
@pass_state
def request(
    state: State,
    access_profile: str,
    ticket: str,
    minutes: int,
    justification: str,
    wait_for_it: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """Ask for access. Prints the link, and the request id on the last line."""
    opened = state.api.call(
        "POST",
        "/api/v1/requests/",
        body={
            "profile": access_profile,
            "ticket": ticket,
            "justification": justification,
            "duration_minutes": minutes,
        },
        # A retry after a lost answer must not open a second request.
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    request_id = opened["id"]
    if not as_json:
        click.echo(state.link(request_id), err=wait_for_it)
    final = opened
    if wait_for_it:
        final = watch(
            state,
            request_id,
            finished=lambda r: r["status"] == "active" or r["status"] in NEVER_ACTIVE,
            timeout=timeout,
        )
    if as_json:
        render.print_json(final)
    else:
        click.echo(request_id)
    if wait_for_it:
        outcome_of_wait_for_active(final)


@cli.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), help="Only requests in this status.")
@click.option("--mine", is_flag=True, help="Only requests I opened.")
@click.option("--limit", type=click.IntRange(1, 100), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The request objects, for scripts.")
@pass_state
def list_requests(state: State, status: str | None, mine: bool, limit: int, as_json: bool) -> None:
    """Requests you can see, newest first."""
    params: dict[str, str | int] = {"page_size": limit}
    if status:
        params["status"] = status
    if mine:
        me = state.api.call("GET", "/api/v1/me/")
        if me["kind"] != "person":
            raise CliError("usage", "--mine needs a personal token", Exit.USAGE)
        params["requester"] = me["name"]
    found = state.api.call("GET", "/api/v1/requests/", params=params)["results"]
    if as_json:
        render.print_json(found)
    else:
        render.requests_table(Console(), found)


@cli.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="The request object, for scripts.")
@pass_state
def status(state: State, request_id: str, as_json: bool) -> None:
    """Status, signatures, time left and the timeline of one request."""
    request_id = request_id_checked(request_id)
    found = state.get_request(request_id)
    if as_json:
        render.print_json(found)
        return
    timeline = state.api.call("GET", f"/api/v1/requests/{request_id}/timeline/")
    lines = [*render.request_summary(found), *render.timeline_summary(timeline["events"])]
    click.echo("\n".join(lines))


@cli.command()
@click.argument("request_id")
@click.option("--until", type=click.Choice(["active", "revoked"]), default="active")
@click.option("--timeout", type=click.IntRange(min=1), default=DEFAULT_WAIT_SECONDS)
@click.option("--json", "as_json", is_flag=True, help="The final request object.")
@pass_state
def wait(state: State, request_id: str, until: str, timeout: int, as_json: bool) -> None:
    """Wait until the request is active (or its access is gone, with --until revoked)."""
    request_id = request_id_checked(request_id)
    if until == "active":
        final = watch(
            state,
            request_id,
            finished=lambda r: r["status"] == "active" or r["status"] in NEVER_ACTIVE,
            timeout=timeout,
        )
    else:
        final = watch(
            state,
            request_id,
            finished=lambda r: r["status"] in ACCESS_GONE or r["status"] == "failed",
            timeout=timeout,
        )
    if as_json:
        render.print_json(final)
    if until == "active":
        outcome_of_wait_for_active(final)
    elif final["status"] == "failed":
        raise ended_error(final)


def _signed(state: State, request_id: str, action: str, body: dict, as_json: bool) -> dict:
    done = state.api.call("POST", f"/api/v1/requests/{request_id}/{action}/", body=body)
    if as_json:
        render.print_json(done)
    else:
        click.echo(
            f"{action}: request {request_id} is {done['status']} "
            f"(signatures {render.signatures(done)})"
        )
    return done


code_option = click.option(
    "--code", help="Your current TOTP code; asked on the terminal when omitted."
)
json_option = click.option("--json", "as_json", is_flag=True, help="The request object.")


@cli.command()
@click.argument("request_id")
@code_option
@json_option
@pass_state
def approve(state: State, request_id: str, code: str | None, as_json: bool) -> None:
    """Sign a request with your TOTP code."""
    request_id = request_id_checked(request_id)
    secret = otp_code(code, f"approve request {request_id}")
    _signed(state, request_id, "approve", {"otp": secret}, as_json)


@cli.command()
@click.argument("request_id")
@click.option("--reason", required=True)
@code_option
@json_option
@pass_state
def reject(state: State, request_id: str, reason: str, code: str | None, as_json: bool) -> None:
    """Refuse a request, with a reason and your TOTP code."""
    request_id = request_id_checked(request_id)
    secret = otp_code(code, f"reject request {request_id}")
    _signed(state, request_id, "reject", {"otp": secret, "reason": reason}, as_json)


@cli.command()
@click.argument("request_id")
@click.option("--reason", required=True)
@code_option
@json_option
@pass_state
def revoke(state: State, request_id: str, reason: str, code: str | None, as_json: bool) -> None:
    """End active access now, with a reason and your TOTP code."""
    request_id = request_id_checked(request_id)
    secret = otp_code(code, f"revoke request {request_id}")
    _signed(state, request_id, "revoke", {"otp": secret, "reason": reason}, as_json)
    state.cache(request_id).drop()


@cli.command()
@click.argument("request_id")
@json_option
@pass_state
def cancel(state: State, request_id: str, as_json: bool) -> None:
    """Withdraw your pending request."""
    request_id = request_id_checked(request_id)
    _signed(state, request_id, "cancel", {}, as_json)


@cli.command()
@click.argument("request_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["env", "profile", "json", "credential-process"]),
    default="env",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@code_option
@pass_state
def credentials(
    state: State, request_id: str, output_format: str, as_json: bool, code: str | None
) -> None:
    """Print the credentials of your active request (asks for a code the first time)."""
    request_id = request_id_checked(request_id)
    found = credentials_obtain(state, request_id, code)
    if as_json or output_format == "json":
        render.print_json(found)
    elif output_format == "env":
        click.echo(render.credentials_env(found))
    elif output_format == "profile":
        click.echo(render.credentials_profile(found, request_id))
    else:
        click.echo(render.credential_process_json(found))


@cli.command(name="credential-process")
@click.argument("request_id")
@code_option
@pass_state
def credential_process(state: State, request_id: str, code: str | None) -> None:
    """For ~/.aws/config: credential_process = breakglass credential-process ID"""
    request_id = request_id_checked(request_id)
    click.echo(render.credential_process_json(credentials_obtain(state, request_id, code)))


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("request_id")
@code_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_command(ctx: click.Context, request_id: str, code: str | None, command: tuple) -> None:
    """Run COMMAND with the request's AWS credentials in its environment."""
    state = ctx.ensure_object(State)
    request_id = request_id_checked(request_id)
    found = credentials_obtain(state, request_id, code)
    env = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        env.pop(name, None)  # a profile would win over these credentials in some tools
    env.update(
        {
            "AWS_ACCESS_KEY_ID": found["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": found["secret_access_key"],
            "AWS_SESSION_TOKEN": found["session_token"],
            "AWS_REGION": found["region"],
            "AWS_DEFAULT_REGION": found["region"],
            "AWS_CREDENTIAL_EXPIRATION": parse_time(found["expiration"])
            .astimezone(UTC)
            .isoformat(),
            "BREAKGLASS_REQUEST_ID": request_id,
        }
    )
    if found.get("endpoint_url"):
        env["AWS_ENDPOINT_URL"] = found["endpoint_url"]
    else:
        env.pop("AWS_ENDPOINT_URL", None)
    try:
        completed = subprocess.run(list(command), env=env, check=False)  # noqa: S603
    except FileNotFoundError:
        raise CliError("usage", f"command not found: {command[0]}", Exit.USAGE) from None
    # A command killed by a signal exits like a shell reports it: 128 + the signal.
    returncode = completed.returncode
    ctx.exit(128 - returncode if returncode < 0 else returncode)


def main() -> None:
    try:
        result = cli.main(prog_name="breakglass", standalone_mode=False)
    except CliError as error:
        click.echo(f"breakglass: {error.code}: {error.message}", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(Exit.USAGE if isinstance(error, click.UsageError) else error.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("breakglass: interrupted", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else Exit.OK)
