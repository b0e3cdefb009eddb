"""Every expected failure is one line on stderr with the API's code, and a documented exit code.

The portal is live (no worker needed): requests stay pending, which is all these paths need.
"""

import json
import os
import pty
import select
import stat
import subprocess
import time
import uuid

import pytest
from django.core.cache import cache

from approvals.models import PersonalToken
from tests.cli.conftest import BREAKGLASS, Laptop, cli_code, dead_port_url, expect_error

pytestmark = pytest.mark.django_db(transaction=True)

API_PROFILE_FIELDS = {
    "slug",
    "name",
    "account_id",
    "region",
    "max_duration_minutes",
    "required_approvals",
    "scopes",
    "networks",
}


def open_request(laptop: Laptop, slug: str, ticket: str = "INC-1") -> str:
    opened = laptop.ok(
        *("request", "--profile", slug, "--ticket", ticket, "--minutes", "10"),
        *("--justification", "Payments are failing; need admin to restart the workers."),
    )
    return opened.stdout.strip().splitlines()[-1]


def test_configure_keeps_the_token_in_a_0600_file_and_never_prints_it(laptops, live_server):
    rita = laptops.rita
    assert stat.S_IMODE(rita.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(rita.config_file.parent.stat().st_mode) == 0o700
    assert rita.token in rita.config_file.read_text()

    second = rita.ok(
        "configure", "--profile", "other", "--url", live_server.url, "--token", rita.token
    )
    assert rita.token not in second.stdout + second.stderr
    assert stat.S_IMODE(rita.config_file.stat().st_mode) == 0o600
    profiles = json.loads(rita.ok("--profile", "other", "profiles", "--json").stdout)
    assert {field for profile in profiles for field in profile} == API_PROFILE_FIELDS


def test_configure_refuses_a_bad_token_and_saves_nothing(cast, live_server, tmp_path):
    stranger = Laptop(name="mallory", home=tmp_path / "mallory", token="bgp_not-a-real-token")
    stranger.home.mkdir()

    done = stranger.run("configure", "--url", live_server.url, "--token", stranger.token)

    expect_error(done, 3, "authentication_failed")
    assert stranger.token not in done.stdout + done.stderr
    assert not stranger.config_file.exists()


def test_a_bad_token_from_the_environment_is_refused(laptops):
    done = laptops.rita.run("profiles", BREAKGLASS_TOKEN="bgp_revoked-or-made-up")

    expect_error(done, 3, "authentication_failed")
    assert "bgp_revoked-or-made-up" not in done.stderr


def test_the_portal_down_is_one_line_not_a_traceback(laptops):
    done = laptops.rita.run("list", BREAKGLASS_URL=dead_port_url())

    line = expect_error(done, 1, "portal_unreachable")
    assert "cannot reach the portal" in line


def test_a_url_that_is_not_the_portal_or_not_https_is_refused(laptops, live_server):
    rita = laptops.rita

    wrong_path = rita.run("profiles", BREAKGLASS_URL=f"{live_server.url}/nowhere")
    plain_http = rita.run("profiles", BREAKGLASS_URL="http://portal.example.com")

    assert "is the URL right?" in expect_error(wrong_path, 4, "http_404")
    assert "refusing to send a token over plain http" in expect_error(plain_http, 2, "usage")


def test_unknown_requests_are_not_found_and_malformed_ids_are_usage_errors(laptops):
    expect_error(laptops.rita.run("status", str(uuid.uuid4())), 4, "not_found")
    expect_error(laptops.rita.run("approve", "42", "--code", "123456"), 2, "usage")
    missing = laptops.rita.run("request", "--ticket", "INC-1")
    assert missing.returncode == 2 and "Missing option" in missing.stderr


def test_a_wrong_code_is_refused_and_signs_nothing(laptops, cast):
    request_id = open_request(laptops.rita, cast.profile.slug)
    right = cli_code(cast.alice)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    refused = laptops.alice.run("approve", request_id, "--code", wrong)

    expect_error(refused, 3, "otp_invalid")
    assert laptops.rita.json("status", request_id)["approvals"] == []


def test_without_a_code_or_a_terminal_nothing_is_asked_or_signed(laptops, cast):
    request_id = open_request(laptops.rita, cast.profile.slug)

    done = laptops.alice.run("approve", request_id)

    assert "pass --code or set BREAKGLASS_OTP_CODE" in expect_error(done, 2, "no_terminal")
    assert laptops.rita.json("status", request_id)["approvals"] == []


def test_the_code_is_asked_on_the_terminal_and_never_echoed(laptops, cast):
    request_id = open_request(laptops.rita, cast.profile.slug)
    code = cli_code(cast.bob)
    controller, terminal = pty.openpty()
    # setsid --ctty makes the pseudo-terminal the command's controlling terminal (/dev/tty).
    process = subprocess.Popen(
        ["setsid", "--ctty", str(BREAKGLASS), "approve", request_id],
        env=laptops.bob.env(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 60
        while b"TOTP code" not in shown and time.monotonic() < deadline:
            if select.select([controller], [], [], 1)[0]:
                shown += os.read(controller, 4096)
        assert b"TOTP code to approve" in shown, shown
        os.write(controller, f"{code}\n".encode())
        assert process.wait(timeout=60) == 0
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the command
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        os.close(controller)
    assert code.encode() not in shown
    assert b"signatures 1/2" in shown
    assert laptops.rita.json("status", request_id)["approvals"][0]["approver"] == "bob"


def test_people_cannot_sign_their_own_request_and_refusals_end_the_wait(laptops, cast):
    rita, alice = laptops.rita, laptops.alice
    request_id = open_request(rita, cast.profile.slug)

    expect_error(
        rita.run("approve", request_id, "--code", cli_code(cast.requester)), 3, "self_approval"
    )
    rejected = alice.json(
        "reject", request_id, "--reason", "use the runbook", "--code", cli_code(cast.alice)
    )

    assert rejected["status"] == "rejected"
    expect_error(rita.run("wait", request_id, "--timeout", "30"), 3, "rejected")
    expect_error(rita.run("credentials", request_id), 3, "rejected")


def test_list_filters_mine_and_status_and_cancel_withdraws(laptops, cast):
    rita, alice = laptops.rita, laptops.alice
    kept = open_request(rita, cast.profile.slug, ticket="INC-2")
    withdrawn = open_request(rita, cast.profile.slug, ticket="INC-3")

    assert rita.json("cancel", withdrawn)["status"] == "cancelled"
    expect_error(rita.run("credentials", kept, "--code", "123456"), 1, "not_active")

    mine_cancelled = rita.json("list", "--mine", "--status", "cancelled")
    mine = rita.json("list", "--mine")
    assert [r["id"] for r in mine_cancelled] == [withdrawn]
    assert [r["id"] for r in mine] == [withdrawn, kept]
    assert {"id", "status", "profile", "ticket", "requester", "approvals"} <= set(mine[0])
    assert alice.json("list", "--mine") == []
    assert kept in rita.ok("list").stdout


def test_a_throttled_command_waits_as_retry_after_says_and_succeeds(laptops, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "token": "1/min"}
    token = PersonalToken.objects.get(user__username="rita", name="laptop")
    # Rita's budget was spent by a burst 52 s ago: the portal asks her to wait about 8 s.
    cache.set(f"throttle:token:{token.token_hash}", [time.time() - 52], 60)

    done = laptops.rita.ok("profiles", "--json")

    assert "throttled by the portal; retrying in" in done.stderr
    assert json.loads(done.stdout)


def test_a_throttle_longer_than_a_minute_is_reported_not_waited_out(laptops, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "token": "1/hour"}
    token = PersonalToken.objects.get(user__username="rita", name="laptop")
    cache.delete(f"throttle:token:{token.token_hash}")  # configure's call does not count here
    laptops.rita.ok("profiles")

    done = laptops.rita.run("profiles")

    assert "retry in" in expect_error(done, 1, "throttled")


def test_expired_cached_credentials_are_deleted_and_reported_without_the_portal(laptops):
    request_id = str(uuid.uuid4())
    cached = laptops.rita.cache_dir / "credentials" / "default" / f"{request_id}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(
        json.dumps(
            {
                "access_key_id": "ASIAEXAMPLE",
                "secret_access_key": "expired-secret",
                "session_token": "expired-token",
                "expiration": "2020-01-01T00:00:00Z",
                "region": "eu-west-1",
            }
        )
    )

    done = laptops.rita.run("credential-process", request_id, BREAKGLASS_URL=dead_port_url())

    assert "expired at 2020-01-01 00:00:00 UTC" in expect_error(done, 5, "expired")
    assert "expired-secret" not in done.stdout + done.stderr
    assert not cached.exists()


def test_configure_without_a_token_or_a_terminal_asks_nothing_and_saves_nothing(tmp_path):
    laptop = Laptop(name="new", home=tmp_path / "new", token="")
    laptop.home.mkdir()

    done = laptop.run("configure", "--url", "https://breakglass.example.com")

    assert "pass --token" in expect_error(done, 2, "no_terminal")
    assert not laptop.config_file.exists()
