"""`breakglass`: translate arguments into REST API calls and render the answers."""

import os
import subprocess
import sys
import uuid
from datetime import UTC

import click
from rich.console import Console

from breakglass_cli import __version__, render
from breakglass_cli.api import Api
from breakglass_cli.cache import parse_time
from breakglass_cli.config import (
    DEFAULT_PROFILE,
    Portal,
    portal_url_checked,
    profile_name_checked,
    profile_save,
)
from breakglass_cli.errors import CliError, Exit
from breakglass_cli.kit import kit as kit_group
from breakglass_cli.session import (
    ACCESS_GONE,
    NEVER_ACTIVE,
    State,
    ask_on_terminal,
    credentials_obtain,
    ended_error,
    notice,
    otp_code,
    outcome_of_wait_for_active,
    request_id_checked,
    watch,
)

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
DEFAULT_WAIT_SECONDS = 3600

pass_state = click.make_pass_decorator(State)


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
@click.option("--scope", help="One of the profile's scopes (default: the profile's default).")
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
    scope: str | None,
    wait_for_it: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """Ask for access. Prints the link, and the request id on the last line."""
    body: dict[str, object] = {
        "profile": access_profile,
        "ticket": ticket,
        "justification": justification,
        "duration_minutes": minutes,
    }
    if scope:
        body["scope"] = scope
    opened = state.api.call(
        "POST",
        "/api/v1/requests/",
        body=body,
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


cli.add_command(kit_group)


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
