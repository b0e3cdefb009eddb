"""Scopes and extensions over the API, from every caller's side: the requester asks, two other
approvers sign with fresh codes; self-approval, double approval, outsiders and bad input are
refused with a specific error and change nothing."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.models import (
    AccessProfile,
    ExtensionApproval,
    ExtensionStatus,
    GrantExtension,
    NotificationDelivery,
    Status,
    TimelineEvent,
)
from approvals.services.requests import request_approve
from approvals.services.scopes import profile_networks_set, scope_set
from approvals.transitions import request_transition
from tests.api.conftest import INTEGRATION, assert_error
from tests.broker import drain_task_messages
from tests.conftest import fresh_code, totp_code

pytestmark = pytest.mark.django_db

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}


def active_request(cast, **overrides):
    """An ACTIVE request (set-up: the worker's side is tested in tests/worker)."""
    access_request = cast.open_request(**overrides)
    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=access_request.pk, approver=approver, otp_code=fresh_code(approver)
        )
    access_request.refresh_from_db()
    request_transition(
        access_request=access_request,
        to_status=Status.ACTIVATING,
        code="approvals.activation.started",
        fields={"expires_at": timezone.now() + timedelta(minutes=30)},
    )
    request_transition(
        access_request=access_request,
        to_status=Status.ACTIVE,
        code="approvals.request.active",
        fields={"activated_at": timezone.now()},
    )
    drain_task_messages(wait=0.1)
    return access_request


def path(access_request, tail="") -> str:
    return f"/api/v1/requests/{access_request.pk}/extensions/{tail}"


def ask(api, access_request, who="rita", **body):
    return api.post(who, path(access_request), {"minutes": 10, "reason": "still failing", **body})


def test_the_requester_asks_and_two_other_approvers_sign_with_fresh_codes(
    api, django_capture_on_commit_callbacks
):
    access_request = active_request(api.cast)
    response = ask(api, access_request)
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "pending" and created["minutes"] == 10
    extension_id = created["id"]

    first = api.post(
        "alice",
        path(access_request, f"{extension_id}/approve/"),
        {"otp": fresh_code(api.cast.alice)},
    )
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post(
            "bob",
            path(access_request, f"{extension_id}/approve/"),
            {"otp": fresh_code(api.cast.bob)},
        )
    assert second.json()["status"] == "approved"
    assert drain_task_messages() == [("approvals.extension_apply", [extension_id])]

    shown = api.get("rita", f"/api/v1/requests/{access_request.pk}/").json()
    assert [e["id"] for e in shown["extensions"]] == [extension_id]
    assert [a["approver"] for a in shown["extensions"][0]["approvals"]] == ["alice", "bob"]
    codes = list(
        TimelineEvent.objects.filter(request=access_request).values_list("code", flat=True)
    )
    assert codes[-4:] == [
        "approvals.extension.requested",
        "approvals.extension.signature.approved",
        "approvals.extension.signature.approved",
        "approvals.extension.approved",
    ]
    signed = TimelineEvent.objects.filter(
        request=access_request, code="approvals.extension.signature.approved"
    ).first()
    assert (
        signed.detail["signature"]["value"]
        == ExtensionApproval.objects.get(approver_name="alice").signature
    )


def test_self_approval_double_approval_and_outsiders_are_refused_as_for_requests(api):
    access_request = active_request(api.cast)
    extension_id = ask(api, access_request).json()["id"]
    approve = path(access_request, f"{extension_id}/approve/")

    assert_error(
        api.post("rita", approve, {"otp": fresh_code(api.cast.requester)}), 403, "self_approval"
    )
    assert_error(api.post("oscar", approve, {"otp": fresh_code(api.cast.outsider)}), 404)
    assert_error(
        api.post("audrey", approve, {"otp": fresh_code(api.cast.auditor)}), 403, "not_an_approver"
    )
    assert_error(api.post(INTEGRATION, approve, {"otp": "123456"}), 403)
    wrong = "000000" if totp_code(api.cast.carol) != "000000" else "111111"
    assert_error(api.post("carol", approve, {"otp": wrong}), 403, "otp_invalid")
    assert api.post("alice", approve, {"otp": fresh_code(api.cast.alice)}).status_code == 200
    assert_error(
        api.post("alice", approve, {"otp": fresh_code(api.cast.alice)}), 403, "already_signed"
    )

    extension = GrantExtension.objects.get(pk=extension_id)
    assert extension.status == ExtensionStatus.PENDING
    assert list(extension.approvals.values_list("approver_name", flat=True)) == ["alice"]
    refusals = TimelineEvent.objects.filter(
        request=access_request, code="approvals.extension.signature.refused"
    )
    assert {e.detail["refusal"] for e in refusals} >= {
        "self_approval",
        "not_an_approver",
        "otp_invalid",
        "already_signed",
    }


def test_a_rejection_needs_a_reason_and_ends_the_extension(api):
    AccessProfile.objects.filter(pk=api.cast.profile.pk).update(notify_emails="oncall@example.com")
    access_request = active_request(api.cast)
    extension_id = ask(api, access_request).json()["id"]
    reject = path(access_request, f"{extension_id}/reject/")
    assert_error(api.post("alice", reject, {"otp": fresh_code(api.cast.alice)}), 400)
    response = api.post(
        "alice", reject, {"otp": fresh_code(api.cast.alice), "reason": "use a new request"}
    )
    assert response.json()["status"] == "rejected"
    access_request.refresh_from_db()
    before = access_request.expires_at
    rejected = TimelineEvent.objects.get(
        request=access_request, code="approvals.extension.rejected"
    )
    assert (rejected.actor_name, rejected.detail["reason"]) == ("alice", "use a new request")
    assert rejected.detail["expires_at"] == before.isoformat()
    assert ask(api, access_request).status_code == 201  # a new one may be asked for
    access_request.refresh_from_db()
    assert access_request.expires_at == before

    notices = dict(
        NotificationDelivery.objects.filter(request=access_request).values_list("event", "body")
    )
    assert "Sign before" in notices["extension.requested"]
    assert "Sign before" not in notices["extension.rejected"]
    assert f"The deadline stays {before:%Y-%m-%d %H:%M:%S} UTC" in notices["extension.rejected"]


def test_a_replayed_code_does_not_sign_a_second_extension(api):
    first = active_request(api.cast)
    second = active_request(api.cast, ticket="INC-5")
    first_id, second_id = (ask(api, r).json()["id"] for r in (first, second))
    code = fresh_code(api.cast.alice)
    assert api.post("alice", path(first, f"{first_id}/approve/"), {"otp": code}).status_code == 200

    replayed = api.post("alice", path(second, f"{second_id}/approve/"), {"otp": code})
    assert_error(replayed, 403, "otp_replayed")
    assert not ExtensionApproval.objects.filter(extension_id=second_id).exists()
    refusal = TimelineEvent.objects.get(
        request=second, code="approvals.extension.signature.refused"
    )
    assert refusal.detail["refusal"] == "otp_replayed"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"minutes": 0}, 400, "minutes"),
        ({"minutes": "ten"}, 400, "minutes"),
        ({"minutes": 31}, 400, None),  # 30 + 31 > the profile's 60
        ({"reason": ""}, 400, "reason"),
        ({"reason": "x" * 1001}, 400, "reason"),
    ],
)
def test_bad_asks_are_refused_and_change_nothing(api, body, status, field):
    access_request = active_request(api.cast)
    error = assert_error(ask(api, access_request, **body), status)
    if field:
        assert field in error["fields"], error
    else:
        assert "allows at most 60" in error["message"]
    assert not GrantExtension.objects.exists()


def test_only_the_requester_of_an_active_grant_asks_one_at_a_time(api):
    access_request = active_request(api.cast)
    assert_error(ask(api, access_request, who="alice"), 400, "not_allowed")
    assert_error(ask(api, access_request, who=INTEGRATION), 403)
    assert ask(api, access_request).status_code == 201
    assert_error(ask(api, access_request), 400, "extension_open")
    pending = api.cast.open_request(ticket="INC-2")
    assert_error(ask(api, pending), 400, "not_active")
    assert_error(api.post("rita", "/api/v1/requests/not-a-uuid/extensions/", {}), 404)
    assert GrantExtension.objects.count() == 1


def test_extensions_of_a_request_the_caller_cannot_see_do_not_exist(api):
    access_request = active_request(api.cast)
    extension_id = ask(api, access_request).json()["id"]
    other = api.cast.open_request(ticket="INC-3")
    assert_error(
        api.post(
            "alice", path(other, f"{extension_id}/approve/"), {"otp": fresh_code(api.cast.alice)}
        ),
        404,
    )
    assert_error(api.get("oscar", path(access_request)), 404)


def test_scope_in_requests_and_profiles(api):
    scope_set(
        profile_slug=api.cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        networks=["10.1.0.0/16"],
        make_default=True,
    )
    profile_networks_set(profile_slug=api.cast.profile.slug, networks=["10.0.0.0/8"])

    profiles = api.get("rita", "/api/v1/profiles/").json()
    assert profiles[0]["networks"] == ["10.0.0.0/8"]
    assert profiles[0]["scopes"] == [
        {
            "name": "read-only",
            "description": "",
            "default": True,
            "policy": READ_ONLY,
            "managed_policy_arns": [],
            "networks": ["10.1.0.0/16"],
        }
    ]
    created = api.post("rita", "/api/v1/requests/", api.open_body(scope="read-only"))
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["scope"] == "read-only"
    assert body["scope_content"] == {
        "name": "read-only",
        "policy": READ_ONLY,
        "managed_policy_arns": [],
        "profile_networks": ["10.0.0.0/8"],
        "scope_networks": ["10.1.0.0/16"],
    }
    error = assert_error(api.post("rita", "/api/v1/requests/", api.open_body(scope="full")), 400)
    assert error["fields"]["scope"] == [
        "profile prod-admin offers no scope 'full' (it offers: read-only)"
    ]
    listed = api.get("rita", "/api/v1/requests/").json()
    assert listed["results"][0]["scope"] == "read-only"
