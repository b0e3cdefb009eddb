import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from awsaccess.credentials_format import (
    console_signin_url,
    render_credential_process,
    render_credentials_file,
    render_shell_exports,
)
from awsaccess.types import IssuedCredentials

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CREDENTIALS = IssuedCredentials(
    access_key_id="ASIAEXAMPLE",
    secret_access_key="sec/ret+key",
    session_token="tok'en",
    expiration=NOW + timedelta(minutes=45),
    region="eu-west-1",
    endpoint_url=None,
)


def test_shell_exports_are_quoted():
    assert render_shell_exports(CREDENTIALS) == (
        "# break-glass credentials, expire 2030-01-01T12:45:00Z\n"
        "export AWS_ACCESS_KEY_ID=ASIAEXAMPLE\n"
        "export AWS_SECRET_ACCESS_KEY=sec/ret+key\n"
        "export AWS_SESSION_TOKEN='tok'\"'\"'en'\n"
        "export AWS_REGION=eu-west-1\n"
        "export AWS_DEFAULT_REGION=eu-west-1\n"
    )


def test_credentials_file_block():
    assert render_credentials_file(CREDENTIALS, profile_name="incident") == (
        "# expires 2030-01-01T12:45:00Z; region eu-west-1\n"
        "[incident]\n"
        "aws_access_key_id = ASIAEXAMPLE\n"
        "aws_secret_access_key = sec/ret+key\n"
        "aws_session_token = tok'en\n"
    )


def test_credential_process_json():
    assert json.loads(render_credential_process(CREDENTIALS)) == {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLE",
        "SecretAccessKey": "sec/ret+key",
        "SessionToken": "tok'en",
        "Expiration": "2030-01-01T12:45:00Z",
    }


@pytest.fixture
def federation_endpoint():
    """A loopback stand-in for https://signin.aws.amazon.com/federation."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            received.append(parse_qs(urlparse(self.path).query))
            body = json.dumps({"SigninToken": "TOKEN123"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/federation", received
    finally:
        server.shutdown()
        server.server_close()


def test_console_url_is_capped_to_the_remaining_time(federation_endpoint):
    endpoint, received = federation_endpoint
    url = console_signin_url(
        CREDENTIALS,
        issuer="https://portal.example",
        now=NOW,
        destination="https://console.aws.amazon.com/",
        federation_endpoint=endpoint,
    )
    (query,) = received
    assert query["Action"] == ["getSigninToken"]
    assert query["SessionDuration"] == ["2700"]
    assert json.loads(query["Session"][0]) == {
        "sessionId": "ASIAEXAMPLE",
        "sessionKey": "sec/ret+key",
        "sessionToken": "tok'en",
    }
    assert parse_qs(urlparse(url).query) == {
        "Action": ["login"],
        "Issuer": ["https://portal.example"],
        "Destination": ["https://console.aws.amazon.com/"],
        "SigninToken": ["TOKEN123"],
    }


def test_console_url_uses_the_minimum_for_short_sessions(federation_endpoint):
    endpoint, received = federation_endpoint
    console_signin_url(
        CREDENTIALS,
        issuer="i",
        destination="d",
        federation_endpoint=endpoint,
        now=CREDENTIALS.expiration - timedelta(minutes=3),
    )
    assert received[0]["SessionDuration"] == ["900"]
    with pytest.raises(ValueError):
        console_signin_url(
            CREDENTIALS,
            issuer="i",
            destination="d",
            federation_endpoint=endpoint,
            now=CREDENTIALS.expiration,
        )
