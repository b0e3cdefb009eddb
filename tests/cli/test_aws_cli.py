"""The real AWS CLI with `credential_process = breakglass credential-process <id>`.

One code for the first call; the second is served from the cache (with the portal unreachable,
to show there is no round trip); after Rita revokes, the AWS CLI shows the portal's reason.
"""

import json
import stat
import subprocess

import pytest

from approvals.models import TimelineEvent
from tests.cli.conftest import AWS, Follower, Laptop, cli_code, dead_port_url, installed

pytestmark = pytest.mark.django_db(transaction=True)


def aws(laptop: Laptop, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(installed(AWS)), "--profile", "breakglass", *args],
        env=laptop.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_the_aws_cli_uses_one_code_then_the_cache_then_shows_the_revocation(
    live, laptops, live_server
):
    cast, rita = live.cast, laptops.rita
    live.start_worker()

    asking = Follower(
        rita,
        *("request", "--profile", live.aws.profile.slug, "--ticket", "INC-77", "--minutes", "10"),
        *("--justification", "Orders queue is stuck; need admin to purge it.", "--wait"),
        *("--timeout", "100"),
    )
    try:
        link = asking.saw(f"{live_server.url}/requests/")
        request_id = link.rstrip("/").rsplit("/", 1)[1]
        asking.saw("pending · signatures 0/2")
        laptops.alice.ok("approve", request_id, "--code", cli_code(cast.alice))
        asking.saw("pending · signatures 1/2")
        laptops.bob.ok("approve", request_id, "--code", cli_code(cast.bob))
        returncode, stdout, progress = asking.finish()
    finally:
        asking.stop()
    assert returncode == 0, progress
    assert stdout.strip().splitlines()[-1] == request_id
    assert "active · signatures 2/2" in progress

    config = rita.home / ".aws" / "config"
    config.parent.mkdir()
    config.write_text(
        "[profile breakglass]\n"
        f"credential_process = breakglass credential-process {request_id}\n"
        f"region = {live.aws.profile.region}\n"
        f"endpoint_url = {live.aws.sandbox.endpoint_url}\n"
    )

    first = aws(rita, "s3api", "list-buckets", BREAKGLASS_OTP_CODE=cli_code(cast.requester))
    assert first.returncode == 0, first.stderr
    assert "Buckets" in json.loads(first.stdout)
    cached = rita.cache_dir / "credentials" / "default" / f"{request_id}.json"
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600

    # No code, and the portal unreachable: only the cache can answer.
    second = aws(rita, "s3api", "list-buckets", BREAKGLASS_URL=dead_port_url())
    assert second.returncode == 0, second.stderr
    viewed = TimelineEvent.objects.filter(
        request_id=request_id, code="approvals.credentials.viewed"
    )
    assert viewed.count() == 1

    rita.ok("revoke", request_id, "--reason", "queue purged", "--code", cli_code(cast.requester))
    assert not cached.exists()

    after = aws(rita, "s3api", "list-buckets")
    assert after.returncode != 0
    assert f"breakglass: revoked: request {request_id} was revoked at" in after.stderr
    assert not cached.exists()
