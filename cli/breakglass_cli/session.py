"""One invocation's portal session: which portal, the API client, secrets asked on the terminal,
following a request until it is active or ended, and obtaining its credentials."""

import getpass
import os
import time
import uuid
from collections.abc import Callable

import click
from rich.console import Console

from breakglass_cli import render
from breakglass_cli.api import Api
from breakglass_cli.cache import CredentialCache, parse_time
from breakglass_cli.config import Portal, portal_resolve, profile_name_checked
from breakglass_cli.errors import CliError, Exit

# A request that stops in one of these will not become active any more.
NEVER_ACTIVE = {"revoking", "revoked", "rejected", "cancelled", "timed_out", "failed"}
# Access is gone (or was never given).
ACCESS_GONE = {"revoked", "rejected", "cancelled", "timed_out"}
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
