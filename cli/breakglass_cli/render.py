"""What people read. Scripts use --json, which is the API's own objects, unchanged."""

import json
import shlex
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from breakglass_cli.cache import parse_time

ENDED = {"revoking", "revoked", "rejected", "cancelled", "timed_out", "failed"}


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def signatures(request: dict) -> str:
    approved = sum(1 for a in request.get("approvals", []) if a.get("decision") == "approve")
    return f"{approved}/{request.get('required_approvals', '?')}"


def elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:02d}:{seconds:02d}"


def moment(text: str | None) -> str:
    if not text:
        return "-"
    return f"{parse_time(text).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def time_left(request: dict) -> str:
    if request.get("status") != "active" or not request.get("expires_at"):
        return "-"
    left = (parse_time(request["expires_at"]) - datetime.now(UTC)).total_seconds()
    return "expiring now" if left <= 0 else f"{int(left // 60)} min {int(left % 60)} s left"


def progress_line(request: dict, seconds: float) -> str:
    return f"{request['status']} · signatures {signatures(request)} · {elapsed(seconds)}"


def profiles_table(console: Console, profiles: list[dict]) -> None:
    table = Table("profile", "name", "account", "region", "max minutes", "approvals")
    for p in profiles:
        table.add_row(
            p["slug"],
            p["name"],
            p["account_id"],
            p["region"],
            str(p["max_duration_minutes"]),
            str(p["required_approvals"]),
        )
    console.print(table)


def requests_table(console: Console, requests: list[dict]) -> None:
    table = Table("id", "status", "profile", "ticket", "requester", "signatures", "opened")
    table.columns[0].no_wrap = True
    for r in requests:
        table.add_row(
            r["id"],
            r["status"],
            r["profile"],
            r["ticket"],
            r["requester"],
            signatures(r),
            moment(r["created_at"]),
        )
    console.print(table)


def request_summary(request: dict) -> list[str]:
    lines = [
        f"request     {request['id']}",
        f"status      {request['status']}",
        f"profile     {request['profile']} for {request['duration_minutes']} min",
        f"ticket      {request['ticket']}",
        f"scope       {request.get('scope') or 'the whole role'}",
        f"requester   {request['requester']}",
        f"signatures  {signatures(request)}",
    ]
    for approval in request.get("approvals", []):
        reason = f": {approval['reason']}" if approval.get("reason") else ""
        lines.append(f"            {approval['decision']} by {approval['approver']}{reason}")
    lines.append(f"time left   {time_left(request)}")
    if request.get("expires_at"):
        lines.append(f"expires     {moment(request['expires_at'])}")
    if request.get("failure_reason"):
        lines.append(f"failure     {request['failure_reason']}")
    return lines


def timeline_summary(events: list[dict]) -> list[str]:
    lines = ["timeline"]
    for event in events:
        code = event["code"].removeprefix("approvals.")
        outcome = (
            "" if event.get("outcome") in ("", "ok", "success", None) else f" ({event['outcome']})"
        )
        lines.append(f"  {moment(event['created_at'])}  {code}{outcome} · {event['actor']}")
    return lines


def credentials_env(credentials: dict) -> str:
    values = {
        "AWS_ACCESS_KEY_ID": credentials["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["secret_access_key"],
        "AWS_SESSION_TOKEN": credentials["session_token"],
        "AWS_REGION": credentials["region"],
        "AWS_DEFAULT_REGION": credentials["region"],
    }
    if credentials.get("endpoint_url"):
        values["AWS_ENDPOINT_URL"] = credentials["endpoint_url"]
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def credentials_profile(credentials: dict, request_id: str) -> str:
    lines = [
        f"# breakglass request {request_id}, expires {moment(credentials['expiration'])}",
        f"[profile breakglass-{request_id[:8]}]",
        f"aws_access_key_id = {credentials['access_key_id']}",
        f"aws_secret_access_key = {credentials['secret_access_key']}",
        f"aws_session_token = {credentials['session_token']}",
        f"region = {credentials['region']}",
    ]
    if credentials.get("endpoint_url"):
        lines.append(f"endpoint_url = {credentials['endpoint_url']}")
    return "\n".join(lines)


def credential_process_json(credentials: dict) -> str:
    """The AWS CLI's credential_process contract, version 1."""
    return json.dumps(
        {
            "Version": 1,
            "AccessKeyId": credentials["access_key_id"],
            "SecretAccessKey": credentials["secret_access_key"],
            "SessionToken": credentials["session_token"],
            "Expiration": parse_time(credentials["expiration"])
            .astimezone(UTC)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
