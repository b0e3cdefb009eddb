"""Ways to hand issued credentials to a human. Pure functions of IssuedCredentials, except the
console URL, which needs one call to the AWS federation endpoint."""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from awsaccess.errors import PermanentAwsError, TransientAwsError
from awsaccess.types import IssuedCredentials

FEDERATION_ENDPOINT = "https://signin.aws.amazon.com/federation"
# The federation endpoint accepts console sessions of 15 minutes to 12 hours.
CONSOLE_MIN_SECONDS = 900
CONSOLE_MAX_SECONDS = 43_200


def _expiration(c: IssuedCredentials) -> str:
    return c.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_shell_exports(c: IssuedCredentials) -> str:
    lines = [
        f"# break-glass credentials, expire {_expiration(c)}",
        f"export AWS_ACCESS_KEY_ID={shlex.quote(c.access_key_id)}",
        f"export AWS_SECRET_ACCESS_KEY={shlex.quote(c.secret_access_key)}",
        f"export AWS_SESSION_TOKEN={shlex.quote(c.session_token)}",
        f"export AWS_REGION={shlex.quote(c.region)}",
        f"export AWS_DEFAULT_REGION={shlex.quote(c.region)}",
    ]
    if c.endpoint_url:
        lines.append(f"export AWS_ENDPOINT_URL={shlex.quote(c.endpoint_url)}")
    return "\n".join(lines) + "\n"


def render_credentials_file(c: IssuedCredentials, profile_name: str = "breakglass") -> str:
    """A block for ~/.aws/credentials (region and endpoint belong in ~/.aws/config)."""
    return (
        f"# expires {_expiration(c)}; region {c.region}"
        + (f"; endpoint {c.endpoint_url}" if c.endpoint_url else "")
        + f"\n[{profile_name}]\n"
        f"aws_access_key_id = {c.access_key_id}\n"
        f"aws_secret_access_key = {c.secret_access_key}\n"
        f"aws_session_token = {c.session_token}\n"
    )


def render_credential_process(c: IssuedCredentials) -> str:
    """The JSON an AWS CLI `credential_process` command must print."""
    return json.dumps(
        {
            "Version": 1,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "SessionToken": c.session_token,
            "Expiration": _expiration(c),
        }
    )


def console_signin_url(
    c: IssuedCredentials,
    *,
    issuer: str,
    destination: str,
    now: datetime,
    federation_endpoint: str = FEDERATION_ENDPOINT,
    timeout: float = 10.0,
) -> str:
    """A console sign-in URL for the session (real AWS only: the sandbox has no console).

    The console session is capped to the credentials' remaining lifetime; below AWS's 15-minute
    minimum it lasts 15 minutes, and the session policy and per-request deny still cut it off.
    The session's secrets travel to the federation endpoint only, over HTTPS, as AWS documents.
    """
    remaining = int((c.expiration - now).total_seconds())
    if remaining <= 0:
        raise ValueError("credentials have expired")
    duration = max(CONSOLE_MIN_SECONDS, min(remaining, CONSOLE_MAX_SECONDS))
    session = json.dumps(
        {
            "sessionId": c.access_key_id,
            "sessionKey": c.secret_access_key,
            "sessionToken": c.session_token,
        }
    )
    query = urllib.parse.urlencode(
        {"Action": "getSigninToken", "SessionDuration": str(duration), "Session": session}
    )
    operation = "signin:GetSigninToken"
    if not federation_endpoint.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ValueError("federation endpoint must be https (or a loopback test stand-in)")
    try:
        with urllib.request.urlopen(f"{federation_endpoint}?{query}", timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            token = json.loads(response.read())["SigninToken"]
    # `from None` throughout: the request URL carries the session's secrets.
    except urllib.error.HTTPError as error:
        kind = TransientAwsError if error.code >= 500 else PermanentAwsError
        raise kind(operation, str(error.code), "federation endpoint refused") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        raise TransientAwsError(operation, "URLError", "network error") from None
    except (ValueError, KeyError):
        raise PermanentAwsError(operation, "BadResponse", "no SigninToken in answer") from None
    login = urllib.parse.urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": destination, "SigninToken": token}
    )
    return f"{federation_endpoint}?{login}"
