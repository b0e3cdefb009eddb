"""The 2 a.m. procedure from three terminals, against a live portal, worker and AWS sandbox.

Rita asks and waits, Alice and Bob sign from their laptops, Rita reads her credentials, runs a
boto3 call through `breakglass exec`, Alice revokes, and the same call is refused.
"""

import json
import shlex
import stat
import subprocess

import pytest

from tests.cli.conftest import BIN, Follower, cli_code, expect_error

pytestmark = pytest.mark.django_db(transaction=True)

PYTHON = str(BIN / "python")
# The role allows ListBuckets; exit 7 when AWS refuses, so the test sees which way it went.
LIST_BUCKETS = """
import sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client("s3", config=Config(retries={"max_attempts": 1}, connect_timeout=3))
try:
    s3.list_buckets()
except ClientError as exc:
    print("refused:", exc.response["Error"]["Code"], file=sys.stderr)
    sys.exit(7)
print("listed")
"""


def exported(text: str) -> dict[str, str]:
    values = {}
    for line in text.strip().splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0]
    return values


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_request_sign_wait_credentials_exec_revoke_refused(live, laptops, live_server):
    cast, rita, alice, bob = live.cast, laptops.rita, laptops.alice, laptops.bob
    slug = live.aws.profile.slug
    live.start_worker()
    said: list[str] = []  # everything printed where no secret belongs

    assert slug in [p["slug"] for p in rita.json("profiles")]
    opened = rita.ok(
        "request",
        *("--profile", slug, "--ticket", "INC-9001", "--minutes", "15"),
        *("--justification", "Checkout is down; need admin to roll back the deploy."),
    )
    said += [opened.stdout, opened.stderr]
    link, request_id = opened.stdout.strip().splitlines()
    assert link == f"{live_server.url}/requests/{request_id}/"
    expect_error(rita.run("wait", request_id, "--timeout", "1"), 5, "wait_timed_out")

    waiting = Follower(rita, "wait", request_id, "--timeout", "100")
    try:
        waiting.saw("pending · signatures 0/2")
        signed = alice.ok("approve", request_id, "--code", cli_code(cast.alice))
        assert "signatures 1/2" in signed.stdout
        waiting.saw("pending · signatures 1/2")
        assert bob.json("approve", request_id, "--code", cli_code(cast.bob))["status"] in (
            "approved",
            "activating",
            "active",
        )
        returncode, _, progress = waiting.finish()
    finally:
        waiting.stop()
    assert returncode == 0, progress
    assert "active · signatures 2/2" in progress
    said.append(progress)

    revealed = rita.ok(
        "credentials", request_id, "--format", "env", "--code", cli_code(cast.requester)
    )
    credentials = exported(revealed.stdout)
    assert set(credentials) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    }
    cached = rita.cache_dir / "credentials" / "default" / f"{request_id}.json"
    assert mode(cached) == 0o600
    assert mode(cached.parent) == mode(cached.parent.parent) == mode(rita.cache_dir) == 0o700

    assert set(rita.json("credentials", request_id)) == {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "expiration",
        "region",
        "endpoint_url",
    }
    process = json.loads(
        rita.ok("credentials", request_id, "--format", "credential-process").stdout
    )
    assert process["Version"] == 1
    assert process["SecretAccessKey"] == credentials["AWS_SECRET_ACCESS_KEY"]
    assert set(process) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }

    used = rita.ok("exec", request_id, "--", PYTHON, "-c", LIST_BUCKETS)  # no code: the cache
    assert used.stdout.strip() == "listed"
    said += [used.stdout, used.stderr]
    passed_on = rita.run("exec", request_id, "--", PYTHON, "-c", "raise SystemExit(9)")
    assert passed_on.returncode == 9

    summary = rita.ok("status", request_id).stdout
    assert "status      active" in summary
    assert "signatures  2/2" in summary
    assert "min" in summary.split("time left", 1)[1].splitlines()[0]
    assert "credentials.viewed · rita" in summary
    said.append(summary)

    revoking = alice.ok(
        "revoke", request_id, "--reason", "rolled back", "--code", cli_code(cast.alice)
    )
    said.append(revoking.stdout)
    alice.ok("wait", request_id, "--until", "revoked", "--timeout", "60")

    # Rita's laptop has not heard yet and serves its cache: AWS itself refuses the keys.
    refused = rita.run("exec", request_id, "--", PYTHON, "-c", LIST_BUCKETS)
    assert refused.returncode == 7, refused.stderr
    same_call = subprocess.run(
        [PYTHON, "-c", LIST_BUCKETS],
        env={**rita.env(), **credentials},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert same_call.returncode == 7, same_call.stderr

    # Any command that learns the request ended drops the cache; then the portal says why.
    said.append(rita.ok("status", request_id).stdout)
    assert not cached.exists()
    gone = expect_error(
        rita.run("exec", request_id, "--", PYTHON, "-c", LIST_BUCKETS), 3, "revoked"
    )
    assert "was revoked" in gone

    for text in said:
        assert credentials["AWS_SECRET_ACCESS_KEY"] not in text
        assert credentials["AWS_SESSION_TOKEN"] not in text
