"""The portal's REST API over httpx: its error shape becomes one line and an exit code."""

import time
from collections.abc import Callable
from typing import Any

import httpx

from breakglass_cli import __version__
from breakglass_cli.config import Portal
from breakglass_cli.errors import EXIT_FOR_STATUS, CliError, Exit

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
# A 429 says when to come back; waiting longer than this is worse than telling the person.
MAX_THROTTLE_WAIT_SECONDS = 60
MAX_ATTEMPTS = 4


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.strip().isdigit() else None


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        fields = error.get("fields") or {}
        # What each field got wrong (e.g. which scopes the profile offers), on the same line.
        details = "; ".join(
            f"{name}: {problem}" for name, problems in fields.items() for problem in problems
        )
        message = f"{error['message']} ({details})" if details else str(error["message"])
        return str(error["code"]), message
    except (ValueError, KeyError, TypeError, AttributeError):
        return (
            f"http_{response.status_code}",
            f"the portal answered HTTP {response.status_code} without the API's error shape; "
            "is the URL right?",
        )


class Api:
    def __init__(self, portal: Portal, *, notice: Callable[[str], None]) -> None:
        self.portal = portal
        self.notice = notice
        self.client = httpx.Client(
            base_url=portal.url,
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Bearer {portal.token}",
                "Accept": "application/json",
                "User-Agent": f"breakglass-cli/{__version__}",
            },
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        params: dict | None = None,
        headers: dict | None = None,
    ) -> Any:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.client.request(
                    method, path, json=body, params=params, headers=headers
                )
            except httpx.TimeoutException:
                raise CliError(
                    "portal_unreachable", f"the portal at {self.portal.url} did not answer in time"
                ) from None
            except httpx.TransportError as exc:
                raise CliError(
                    "portal_unreachable",
                    f"cannot reach the portal at {self.portal.url}: {exc or type(exc).__name__}",
                ) from None
            if response.status_code == 429 and attempt < MAX_ATTEMPTS:
                wait = _retry_after(response)
                if wait is not None and wait <= MAX_THROTTLE_WAIT_SECONDS:
                    self.notice(f"throttled by the portal; retrying in {wait} s")
                    time.sleep(wait)
                    continue
            return self._result(response)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    def _result(self, response: httpx.Response) -> Any:
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise CliError(
                    "bad_response",
                    f"the portal at {self.portal.url} did not answer JSON; is the URL right?",
                ) from None
        code, message = _error_of(response)
        raise CliError(code, message, EXIT_FOR_STATUS.get(response.status_code, Exit.OTHER))
