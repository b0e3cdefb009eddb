import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from approvals.models import PersonalToken, SealedTOTPDevice
from approvals.timeline import timeline_append
from tests.conftest import totp_code
from tests.tamper import raw_sql

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_add_user_creates_an_approver_with_a_confirmed_device(cast):
    output = run(
        "add_user",
        "dave",
        "--email",
        "dave@example.com",
        "--password",
        "s3cret-pass-word",
        "--approver",
        "--totp-secret",
        SECRET,
    )

    dave = User.objects.get(username="dave")
    assert "created user dave" in output
    assert SECRET not in output
    assert dave.check_password("s3cret-pass-word")
    assert dave.groups.filter(name="approvers").exists()
    device = SealedTOTPDevice.objects.get(user=dave)
    assert device.confirmed
    assert SECRET not in device.sealed_key
    assert device.verify_token(totp_code(dave))


def test_add_user_is_idempotent_and_keeps_the_device_without_a_new_secret(cast):
    run("add_user", "erin", "--totp-secret", SECRET)
    device = SealedTOTPDevice.objects.get(user__username="erin")

    output = run("add_user", "erin")

    assert "updated user erin" in output
    assert "otpauth://" not in output
    assert SealedTOTPDevice.objects.get(user__username="erin").pk == device.pk
    assert User.objects.filter(username="erin").count() == 1


def test_add_user_prints_a_generated_secret_once_as_an_otpauth_uri(cast):
    output = run("add_user", "fay")

    assert "otpauth://totp/" in output
    assert "secret=" in output


def test_add_user_takes_the_password_from_the_environment(cast, monkeypatch):
    monkeypatch.setenv("BREAKGLASS_USER_PASSWORD", "from-the-env-123")
    run("add_user", "gus")

    assert User.objects.get(username="gus").check_password("from-the-env-123")


def test_add_user_prints_an_api_token_last_and_stores_only_its_hash(cast):
    output = run("add_user", "hal", "--api-token")

    token = output.strip().splitlines()[-1]
    assert token.startswith("bgp_")
    stored = PersonalToken.objects.get(user__username="hal")
    assert token not in (stored.token_hash, stored.prefix)


@pytest.mark.parametrize(
    ("secret", "message"),
    [("not base32!", "must be base32"), ("JBSWY3DP", "10-64 bytes"), ("A" * 9, "not valid base32")],
)
def test_add_user_rejects_a_malformed_secret_and_creates_nobody(cast, secret, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_user", "ivy", "--totp-secret", secret)

    assert not User.objects.filter(username="ivy").exists()


def test_verify_timeline_passes_on_an_intact_record(cast):
    cast.open_request()

    assert "timeline intact" in run("verify_timeline")


def test_verify_timeline_fails_naming_the_first_broken_event(cast):
    access_request = cast.open_request()
    first = timeline_append(access_request=access_request, code="test.event")
    later = timeline_append(access_request=access_request, code="test.event")
    for event in (later, first):
        raw_sql(
            "UPDATE approvals_timelineevent SET detail = '{\"forged\": 1}' WHERE id = %s",
            [event.pk],
        )

    # The message names the request and its first broken event (not the later one).
    named = rf"timeline broken: request {access_request.pk} \(INC-1234\), event {first.pk} \(#"
    with pytest.raises(CommandError, match=named):
        call_command("verify_timeline")


def test_export_timeline_writes_json_and_csv(cast):
    access_request = cast.open_request()

    record = json.loads(run("export_timeline", str(access_request.pk), "--format", "json"))
    rows = list(
        csv.DictReader(
            io.StringIO(run("export_timeline", str(access_request.pk), "--format", "csv"))
        )
    )

    assert record["request"]["ticket"] == "INC-1234"
    assert record["chain_verified"] is True
    assert [e["code"] for e in record["timeline"]] == ["approvals.request.opened"]
    assert rows[0]["code"] == "approvals.request.opened"
    assert rows[0]["hash"] == record["timeline"][0]["hash"]


def test_export_timeline_names_an_unknown_request(cast):
    with pytest.raises(CommandError, match="no request 00000000-0000-0000-0000-000000000000"):
        call_command("export_timeline", "00000000-0000-0000-0000-000000000000")
