"""The whole break-glass story in a real browser, against the real worker and the AWS sandbox."""

import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import expect

from approvals.models import AccessRequest, SealedTOTPDevice, Status
from tests.conftest import fresh_code, totp_code
from tests.processes import wait_until
from tests.web.helpers import wrong_code

pytestmark = pytest.mark.django_db(transaction=True)


def file_request(rita, profile_slug: str) -> str:
    page = rita.go("/requests/new/")
    page.get_by_role("combobox", name="Access profile").select_option(profile_slug)
    page.get_by_label("Ticket reference").fill("INC-2024")
    page.get_by_label("Justification").fill("Payments DB is down; need admin to restore it.")
    page.get_by_label("Duration (minutes)").fill("30")
    rita.screenshot("01-request-form")
    page.get_by_role("button", name="File the request").click()
    page.wait_for_url("**/requests/*/")
    return page.url.removeprefix(rita.base_url)


def approve(person, request_path: str) -> None:
    page = person.go(request_path)
    page.locator("form[action$='/approve/']").get_by_label("Code from your authenticator app").fill(
        fresh_code(person.user)
    )
    page.get_by_role("button", name="Approve with this code").click()
    expect(page.get_by_text("Your approval is signed and recorded.")).to_be_visible()


def test_request_two_approvals_credentials_that_work_and_early_revocation(live, people):
    live.start_worker()
    cast = live.cast
    rita = people(cast.requester).sign_in()
    expect(rita.page.get_by_test_id("signed-in-user")).to_have_text("rita")
    expect(rita.page.get_by_text("OTP verified")).to_be_visible()
    request_path = file_request(rita, live.aws.profile.slug)
    expect(rita.page.get_by_test_id("status")).to_have_text("PENDING")
    expect(rita.page.get_by_test_id("cannot-sign")).to_contain_text("your own request")
    rita.screenshot("02-request-pending")

    alice = people(cast.alice).sign_in()
    expect(alice.page.get_by_role("link", name="Review and sign")).to_be_visible()
    alice.screenshot("03-dashboard-waiting")
    approve(alice, request_path)
    bob = people(cast.bob, viewport={"width": 390, "height": 844}).sign_in()
    approve(bob, request_path)
    bob.screenshot("04-request-approved-phone")

    # No reload by hand: the page follows the worker until access is active.
    expect(rita.page.get_by_test_id("status")).to_have_text("ACTIVE", timeout=40_000)
    expect(rita.page.get_by_test_id("countdown")).to_contain_text("min")
    rita.screenshot("05-request-active")

    form = rita.page.locator("form[action$='/credentials/']")
    form.get_by_label("Code from your authenticator app").fill(fresh_code(cast.requester))
    rita.page.get_by_role("button", name="Show my credentials").click()
    process = json.loads(rita.page.get_by_test_id("cred-process").inner_text())
    expect(rita.page.get_by_test_id("cred-shell")).to_contain_text("export AWS_SESSION_TOKEN=")
    rita.screenshot("06-credentials")
    credentials = SimpleNamespace(
        access_key_id=process["AccessKeyId"],
        secret_access_key=process["SecretAccessKey"],
        session_token=process["SessionToken"],
    )
    assert live.aws.s3_with(credentials).list_buckets()["Buckets"] is not None

    page = alice.go(request_path)
    revoke = page.locator("form[action$='/revoke/']")
    revoke.get_by_label("Code from your authenticator app").fill(fresh_code(cast.alice))
    revoke.get_by_label("Reason for ending access now").fill("Incident resolved")
    page.get_by_role("button", name="Revoke now").click()
    expect(page.get_by_test_id("status")).to_have_text("REVOKED", timeout=40_000)
    alice.screenshot("07-request-revoked")

    # An ended request's record is sealed by the worker just after it ends; the page stops
    # polling once the request is terminal, so reload until the seal shows.
    seal = page.locator("[data-testid=timeline] [data-code='approvals.timeline.sealed']")

    def sealed_shown() -> bool:
        page.reload()
        return seal.count() == 1

    wait_until(sealed_shown, timeout=30, interval=1, what="the ended request's seal")
    shown = page.locator("[data-testid=timeline] [data-code]").evaluate_all(
        "els => els.map(e => e.dataset.code)"
    )
    assert shown == [
        "approvals.request.opened",
        "approvals.signature.approved",
        "approvals.signature.approved",
        "approvals.request.approved",
        "approvals.activation.started",
        "approvals.activation.grant_attached",
        "approvals.request.active",
        "approvals.credentials.viewed",
        "approvals.revocation.requested",
        "approvals.request.revoked",
        "approvals.timeline.sealed",
    ]
    expect(page.get_by_text("Reason: Incident resolved")).to_be_visible()
    with pytest.raises(ClientError):
        live.aws.s3_with(credentials).list_buckets()
    access_request = AccessRequest.objects.get()
    assert access_request.status == Status.REVOKED


def test_self_approval_wrong_and_replayed_codes_are_refused_in_the_browser(live, people):
    cast = live.cast
    rita = people(cast.requester).sign_in()
    request_path = file_request(rita, live.aws.profile.slug)
    page = rita.page
    expect(page.get_by_test_id("cannot-sign")).to_have_text(
        "You cannot sign: this is your own request."
    )
    expect(page.get_by_role("button", name="Approve with this code")).to_have_count(0)
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    forged = page.request.post(
        rita.base_url + request_path + "approve/",
        form={"csrfmiddlewaretoken": token, "code": fresh_code(cast.requester)},
    )
    assert forged.status == 403
    assert "you cannot approve your own request" in forged.text()

    alice = people(cast.alice).sign_in()
    page = alice.go(request_path)
    approve_form = page.locator("form[action$='/approve/']")
    approve_form.get_by_label("Code from your authenticator app").fill(
        wrong_code(totp_code(cast.alice))
    )
    page.get_by_role("button", name="Approve with this code").click()
    expect(page.get_by_test_id("action-error")).to_contain_text("not valid")
    alice.screenshot("08-wrong-code")
    expect(page.locator("[data-code='approvals.signature.refused']")).to_have_count(2)

    second_path = file_request(rita, live.aws.profile.slug)
    # The wrong code above locked alice's device for a moment (throttling); let it lapse.
    wait_until(
        lambda: SealedTOTPDevice.objects.get(user=cast.alice).verify_is_allowed()[0],
        timeout=10,
        what="throttle lapsed",
    )
    code = fresh_code(cast.alice)
    page = alice.go(request_path)
    page.locator("form[action$='/approve/']").get_by_label("Code from your authenticator app").fill(
        code
    )
    page.get_by_role("button", name="Approve with this code").click()
    expect(page.get_by_text("Your approval is signed and recorded.")).to_be_visible()
    page = alice.go(second_path)
    page.locator("form[action$='/approve/']").get_by_label("Code from your authenticator app").fill(
        code
    )
    page.get_by_role("button", name="Approve with this code").click()
    expect(page.get_by_test_id("action-error")).to_contain_text("already used")
