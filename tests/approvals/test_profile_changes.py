"""The two-person rule for the rules, from the side of one administrator who wants to approve
alone: a new approver group, or fewer required approvals, waits for a different administrator's
TOTP code; the proposer, another account of theirs, a wrong or replayed code confirm nothing."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User

from approvals.models import (
    AccessProfile,
    ProfileChange,
    ProfileChangeStatus,
    SealedTOTPDevice,
    SecurityAlarm,
    TimelineEvent,
)
from approvals.services.identity import totp_device_set
from approvals.services.persons import person_identifier_set
from approvals.timeline import SYSTEM_CHAIN, timeline_verify
from tests.approvals.admin_forms import admin_form_data
from tests.conftest import fresh_code, make_user
from tests.web.conftest import verified_client
from tests.web.helpers import wrong_code

pytestmark = pytest.mark.django_db


def administrator(username: str, **flags) -> User:
    flags = flags or {"is_superuser": True}
    user = User.objects.create_user(username, password=f"{username}-pw-123", is_staff=True, **flags)
    totp_device_set(user=user)
    return user


@pytest.fixture
def friends(cast) -> Group:
    """The group a hostile administrator would like to approve with: themselves and a puppet."""
    group = Group.objects.create(name="friends")
    make_user("puppet", group)
    return group


def profile_url(profile: AccessProfile) -> str:
    return f"/admin/approvals/accessprofile/{profile.pk}/change/"


def profile_save(admin: User, profile: AccessProfile, **edits) -> None:
    """The administrator edits the profile's admin page and saves it."""
    client = verified_client(admin)
    url = profile_url(profile)
    response = client.post(url, admin_form_data(client, url, **edits))
    assert response.status_code == 302, response.context["adminform"].form.errors


def propose(admin: User, profile: AccessProfile, **edits) -> ProfileChange:
    latest = ProfileChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    profile_save(admin, profile, **edits)
    return ProfileChange.objects.get(profile=profile, pk__gt=latest)


def throttle_waited(user: User) -> None:
    """A failed code locks the device for a moment (django-otp); wait it out, bounded."""
    deadline = time.monotonic() + 30
    while not SealedTOTPDevice.objects.get(user=user).verify_is_allowed()[0]:
        assert time.monotonic() < deadline, "the OTP throttle did not lapse"
        time.sleep(0.2)


def confirm(admin: User, change: ProfileChange, code: str):
    return verified_client(admin).post(
        f"/admin/approvals/profilechange/{change.pk}/confirm/", {"otp_code": code}
    )


def codes_since(sequence: int) -> list[str]:
    return list(
        TimelineEvent.objects.filter(
            chain=SYSTEM_CHAIN, sequence__gt=sequence, code__startswith="approvals.admin."
        )
        .order_by("sequence")
        .values_list("code", flat=True)
    )


def system_head() -> int:
    return TimelineEvent.objects.filter(chain=SYSTEM_CHAIN).order_by("-sequence")[0].sequence


def test_an_approver_group_change_is_pending_until_a_second_administrator_confirms(cast, friends):
    root, sam = administrator("root"), administrator("sam")
    start = system_head()

    change = propose(root, cast.profile, approver_group=friends.pk)

    cast.profile.refresh_from_db()
    assert cast.profile.approver_group.name == "approvers"  # nothing changed yet
    assert change.status == ProfileChangeStatus.PENDING
    assert change.summary() == {"approver_group": {"before": "approvers", "after": "friends"}}
    assert codes_since(start) == ["approvals.admin.profile_change_proposed"]
    proposed = TimelineEvent.objects.get(code="approvals.admin.profile_change_proposed")
    assert proposed.actor_name == "root" and proposed.detail["change"] == change.pk

    own = confirm(root, change, fresh_code(root))
    wrong = confirm(sam, change, wrong_code(fresh_code(sam)))

    assert own.status_code == wrong.status_code == 200
    assert "you proposed this change" in own.content.decode()
    assert "the OTP code is not valid" in wrong.content.decode()
    change.refresh_from_db()
    cast.profile.refresh_from_db()
    assert change.status == ProfileChangeStatus.PENDING
    assert cast.profile.approver_group.name == "approvers"
    refusals = TimelineEvent.objects.filter(code="approvals.admin.profile_change_refused")
    assert [(e.actor_name, e.detail["refusal"]) for e in refusals.order_by("sequence")] == [
        ("root", "self_confirmation"),
        ("sam", "otp_invalid"),
    ]

    throttle_waited(sam)
    confirmed = confirm(sam, change, fresh_code(sam))

    assert confirmed.status_code == 302
    cast.profile.refresh_from_db()
    change.refresh_from_db()
    assert cast.profile.approver_group == friends
    assert change.status == ProfileChangeStatus.CONFIRMED and change.decided_by_name == "sam"
    applied = TimelineEvent.objects.filter(code="approvals.admin.profile_changed").latest("pk")
    assert applied.actor_name == "sam"
    assert applied.detail["changes"]["approver_group"] == {
        "before": "approvers",
        "after": "friends",
    }
    assert SecurityAlarm.objects.filter(
        kind="admin_profile_changed", title="profile prod-admin changed: approver_group (by sam)"
    ).exists()
    assert timeline_verify().ok


def test_fewer_required_approvals_needs_a_second_administrator_more_does_not(cast):
    root = administrator("root")

    profile_save(root, cast.profile, required_approvals=3)
    cast.profile.refresh_from_db()
    assert cast.profile.required_approvals == 3
    assert not ProfileChange.objects.exists()

    change = propose(root, cast.profile, required_approvals=2, name="Production (renamed)")

    cast.profile.refresh_from_db()
    assert cast.profile.required_approvals == 3  # pending
    assert cast.profile.name == "Production (renamed)"  # the rest of the form was saved
    assert change.summary() == {"required_approvals": {"before": 3, "after": 2}}


def test_a_replayed_code_confirms_nothing(cast, friends):
    root, sam = administrator("root"), administrator("sam")
    billing = AccessProfile.objects.create(
        slug="billing",
        name="Billing",
        account_id=cast.profile.account_id,
        region="eu-west-1",
        role_arn="arn:aws:iam::123456789012:role/billing",
        principal_arn=cast.profile.principal_arn,
        approver_group=cast.profile.approver_group,
    )
    first = propose(root, cast.profile, approver_group=friends.pk)
    second = propose(root, billing, approver_group=friends.pk)
    code = fresh_code(sam)

    assert confirm(sam, first, code).status_code == 302
    replayed = confirm(sam, second, code)

    assert "OTP code already used" in replayed.content.decode()
    second.refresh_from_db()
    billing.refresh_from_db()
    assert second.status == ProfileChangeStatus.PENDING
    assert billing.approver_group == cast.profile.approver_group


def test_another_account_of_the_proposer_is_not_a_second_administrator(cast, friends):
    root, root_again = administrator("root"), administrator("root-again")
    person_identifier_set(user=root, identifier="root@example.com")
    person_identifier_set(user=root_again, identifier="root@example.com")
    change = propose(root, cast.profile, approver_group=friends.pk)

    response = confirm(root_again, change, fresh_code(root_again))

    assert "another account of yours" in response.content.decode()
    change.refresh_from_db()
    assert change.status == ProfileChangeStatus.PENDING


def test_staff_who_may_not_administer_profiles_cannot_confirm(cast, friends):
    root, clerk = administrator("root"), administrator("clerk", is_superuser=False)
    change = propose(root, cast.profile, approver_group=friends.pk)
    stranger = verified_client(clerk).get(f"/admin/approvals/profilechange/{change.pk}/confirm/")
    clerk.user_permissions.add(Permission.objects.get(codename="view_profilechange"))

    response = confirm(clerk, change, fresh_code(clerk))

    assert stranger.status_code == 403  # staff who may not even see the changes
    assert "only an administrator of profiles can confirm" in response.content.decode()
    assert ProfileChange.objects.get(pk=change.pk).status == ProfileChangeStatus.PENDING


def test_an_old_or_stale_proposal_cannot_be_confirmed(cast, friends):
    root, sam, tom = administrator("root"), administrator("sam"), administrator("tom")
    old = propose(root, cast.profile, required_approvals=2, approver_group=friends.pk)
    ProfileChange.objects.filter(pk=old.pk).update(proposed_at=old.proposed_at - timedelta(days=4))
    first = propose(root, cast.profile, approver_group=friends.pk)
    second = propose(root, cast.profile, approver_group=Group.objects.create(name="others").pk)

    expired = confirm(sam, old, fresh_code(sam))
    assert confirm(tom, first, fresh_code(tom)).status_code == 302
    outdated = confirm(sam, second, fresh_code(sam))

    assert "proposed too long ago" in expired.content.decode()
    assert "changed since this was proposed" in outdated.content.decode()
    cast.profile.refresh_from_db()
    assert cast.profile.approver_group == friends


def test_any_administrator_may_withdraw_a_pending_change(cast, friends):
    root, sam = administrator("root"), administrator("sam")
    change = propose(root, cast.profile, approver_group=friends.pk)

    response = verified_client(sam).post(
        "/admin/approvals/profilechange/",
        {"action": "withdraw", "_selected_action": [change.pk]},
    )

    assert response.status_code == 302
    change.refresh_from_db()
    assert change.status == ProfileChangeStatus.WITHDRAWN
    assert "this change is withdrawn" in confirm(sam, change, fresh_code(sam)).content.decode()
    event = TimelineEvent.objects.get(code="approvals.admin.profile_change_withdrawn")
    assert event.actor_name == "sam"
