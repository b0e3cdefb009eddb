"""Administration on the record, tried as a single administrator who wants to be two approvers
unseen: every path (the admin, the commands, the ORM) lands on the system chain with who did it
and an alarm when it changes who may approve or what a profile grants."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db.models import signals
from django.test import Client

from approvals.errors import NotAllowed, SignatureRefused
from approvals.models import (
    AccessProfile,
    AccessRequest,
    PersonIdentity,
    SecurityAlarm,
    Status,
    TimelineEvent,
)
from approvals.services.api_access import integration_key_create, personal_token_create
from approvals.services.identity import totp_device_set
from approvals.services.persons import person_identifier_set
from approvals.services.requests import request_approve
from approvals.timeline import SYSTEM_CHAIN, timeline_verify
from tests.approvals.admin_forms import admin_form_data
from tests.conftest import fresh_code, make_user
from tests.web.conftest import verified_client

pytestmark = pytest.mark.django_db


def system_event(code: str) -> TimelineEvent:
    return TimelineEvent.objects.filter(chain=SYSTEM_CHAIN, code=code).latest("sequence")


def admin_alarms(kind: str) -> list[str]:
    return list(
        SecurityAlarm.objects.filter(kind=f"admin_{kind}")
        .order_by("pk")
        .values_list("title", flat=True)
    )


def administrator(username: str) -> User:
    user = User.objects.create_superuser(username, password=f"{username}-password-123")
    totp_device_set(user=user)
    return user


@pytest.fixture
def root(cast) -> User:
    return administrator("root")


def test_adding_a_user_to_the_approvers_in_the_admin_is_on_the_record_with_an_alarm(cast, root):
    approvers = cast.profile.approver_group
    client = verified_client(root)
    url = f"/admin/auth/user/{cast.outsider.pk}/change/"

    response = client.post(url, admin_form_data(client, url, groups=[approvers.pk]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert cast.outsider.groups.filter(pk=approvers.pk).exists()
    event = system_event("approvals.admin.group_member_added")
    assert event.actor_name == "root" and event.actor_id == root.pk
    assert event.source_ip == "127.0.0.1"
    assert event.detail["user"] == "oscar"
    assert event.detail["groups"] == {"before": [], "after": ["approvers"]}
    assert event.detail["approves"] == ["prod-admin"]
    assert admin_alarms("approvers_changed") == [
        "oscar added to approver group approvers (prod-admin) (by root)"
    ]
    assert timeline_verify().ok


def test_add_user_approver_is_on_the_record_with_an_alarm(cast):
    call_command("add_user", "mallory", "--approver", "--person", "Mallory@Example.com")

    mallory = User.objects.get(username="mallory")
    created = system_event("approvals.admin.user_created")
    joined = system_event("approvals.admin.group_member_added")
    person = system_event("approvals.admin.person_identifier_changed")
    assert created.detail["user"] == joined.detail["user"] == "mallory"
    assert created.actor_name == joined.actor_name == "system/command"
    assert person.detail["identifier"] == {"before": None, "after": "mallory@example.com"}
    assert PersonIdentity.objects.get(user=mallory).identifier == "mallory@example.com"
    assert admin_alarms("approvers_changed") == [
        "mallory added to approver group approvers (prod-admin) (by system/command)"
    ]
    assert admin_alarms("person_changed") == [
        "person identifier of approver mallory changed (by system/command)"
    ]


def test_removing_deactivating_and_replacing_an_approvers_device_are_alarmed(cast):
    cast.alice.groups.remove(cast.profile.approver_group)
    cast.bob.is_active = False
    cast.bob.save()
    totp_device_set(user=cast.carol)

    removed = system_event("approvals.admin.group_member_removed")
    assert removed.detail["groups"] == {"before": ["approvers"], "after": []}
    assert system_event("approvals.admin.user_deactivated").detail["changes"]["is_active"] == {
        "before": True,
        "after": False,
    }
    assert system_event("approvals.admin.device_removed").detail["user"] == "carol"
    assert system_event("approvals.admin.device_added").detail["user"] == "carol"
    assert admin_alarms("approvers_changed") == [
        "alice removed from approver group approvers (prod-admin) (by system/command)",
        "approver bob (prod-admin) deactivated (by system/command)",
    ]
    assert admin_alarms("device_changed") == [
        "TOTP device of approver carol replaced by someone else (by system/command)"
    ]


def test_a_sign_in_or_an_unchanged_save_adds_nothing(cast):
    before = TimelineEvent.objects.filter(chain=SYSTEM_CHAIN).count()

    Client().login(username="alice", password="alice-password-123")  # updates last_login
    cast.alice.save()
    request_approve(
        access_request_id=cast.open_request().pk,
        approver=cast.alice,
        otp_code=fresh_code(cast.alice),
    )  # the device's counters change, not its seed

    assert not TimelineEvent.objects.filter(
        chain=SYSTEM_CHAIN, sequence__gt=before, code__startswith="approvals.admin."
    ).exists()


def test_integration_keys_and_webhooks_from_commands_are_on_the_record(cast, capsys):
    call_command("add_integration_key", "pagerduty")
    call_command("add_webhook", "https://hooks.example.com/T000/B000/secret-path")

    key = system_event("approvals.admin.integration_key_created")
    hook = system_event("approvals.admin.webhook_created")
    assert key.detail["after"]["name"] == "pagerduty" and key.actor_name == "system/command"
    assert hook.detail["after"]["url"].startswith("https://hooks.example.com/… sha256:")
    assert "secret-path" not in str(hook.detail)  # the URL's secret part stays off the record


def test_a_new_profile_and_a_change_of_its_role_are_alarmed(cast):
    other = AccessProfile.objects.create(
        slug="shadow",
        name="Shadow",
        account_id=cast.profile.account_id,
        region="eu-west-1",
        role_arn=cast.profile.role_arn,
        principal_arn=cast.profile.principal_arn,
        approver_group=Group.objects.create(name="friends"),
    )
    other.role_arn = "arn:aws:iam::123456789012:role/other"
    other.save()
    other.name = "Renamed"
    other.save()

    changed = system_event("approvals.admin.profile_changed")
    assert changed.detail["changes"] == {"name": {"before": "Shadow", "after": "Renamed"}}
    assert admin_alarms("profile_changed") == [
        f"profile shadow created: it grants {cast.profile.role_arn} (by system/command)",
        "profile shadow changed: role_arn (by system/command)",
    ]


# --- who is acting -------------------------------------------------------------------------


@pytest.fixture
def identify_carol_on_each_new_request(cast):
    """No API endpoint administers anything yet: this stands in for one, an administration change
    made while the API serves a call (after the token is authenticated)."""

    def identify_carol(sender, instance, created, **kwargs):
        if created:
            person_identifier_set(
                user=cast.carol, identifier=f"carol+{instance.ticket}@example.com"
            )

    uid = "tests-administration-during-an-api-call"
    signals.post_save.connect(identify_carol, sender=AccessRequest, dispatch_uid=uid)
    yield
    signals.post_save.disconnect(sender=AccessRequest, dispatch_uid=uid)


@pytest.mark.usefixtures("identify_carol_on_each_new_request")
def test_an_administration_change_during_an_api_call_names_the_token_owner(cast):
    token = personal_token_create(user=cast.requester, name="cli")

    response = Client().post(
        "/api/v1/requests/",
        {
            "profile": cast.profile.slug,
            "ticket": "INC-7",
            "justification": "Payments are down; need admin to fail over.",
            "duration_minutes": 30,
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 201, response.content
    event = system_event("approvals.admin.person_identifier_changed")
    assert event.actor_name == "rita" and event.actor_id == cast.requester.pk
    assert event.detail["by"] == "rita" and event.source_ip == "127.0.0.1"
    assert admin_alarms("person_changed") == [
        "person identifier of approver carol changed (by rita)"
    ]


@pytest.mark.usefixtures("identify_carol_on_each_new_request")
def test_an_administration_change_during_an_integrations_call_names_the_integration(cast):
    _, key = integration_key_create(name="pagerduty")

    response = Client().post(
        "/api/v1/requests/",
        {
            "profile": cast.profile.slug,
            "ticket": "INC-8",
            "justification": "Payments are down; need admin to fail over.",
            "duration_minutes": 30,
            "requester": "rita",
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 201, response.content
    event = system_event("approvals.admin.person_identifier_changed")
    assert event.actor_name == "integration:pagerduty" and event.actor_id is None


# --- person identifiers -------------------------------------------------------------------


def test_a_second_account_of_an_approver_cannot_be_the_second_approval(cast):
    alias = make_user("alice-ops", cast.profile.approver_group)
    person_identifier_set(user=cast.alice, identifier="alice@example.com")
    person_identifier_set(user=alias, identifier=" ALICE@example.com ")
    access_request = cast.open_request()
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    with pytest.raises(SignatureRefused) as refused:
        request_approve(
            access_request_id=access_request.pk, approver=alias, otp_code=fresh_code(alias)
        )

    assert refused.value.code == "same_person"
    assert "same person as another signer of this request" in refused.value.message
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING
    assert access_request.approvals.count() == 1


def test_a_requester_cannot_approve_through_a_second_account(cast):
    alias = make_user("rita-approver", cast.profile.approver_group)
    person_identifier_set(user=cast.requester, identifier="sso|rita")
    person_identifier_set(user=alias, identifier="sso|rita")
    access_request = cast.open_request()

    with pytest.raises(SignatureRefused) as refused:
        request_approve(
            access_request_id=access_request.pk, approver=alias, otp_code=fresh_code(alias)
        )

    assert refused.value.code == "same_person"
    assert "same person as the requester" in refused.value.message
    assert not access_request.approvals.exists()


def test_different_people_still_approve(cast):
    person_identifier_set(user=cast.alice, identifier="alice@example.com")
    person_identifier_set(user=cast.bob, identifier="bob@example.com")
    access_request = cast.open_request()

    for approver in (cast.alice, cast.bob):
        request_approve(
            access_request_id=access_request.pk, approver=approver, otp_code=fresh_code(approver)
        )

    access_request.refresh_from_db()
    assert access_request.status == Status.APPROVED


def test_add_user_refuses_an_empty_person_identifier(cast):
    with pytest.raises(CommandError, match="person identifier cannot be empty"):
        call_command("add_user", "nobody", "--person", "   ")

    assert not User.objects.filter(username="nobody").exists()


def test_the_admin_sets_a_person_identifier_on_the_record(cast, root):
    client = verified_client(root)
    url = f"/admin/auth/user/{cast.bob.pk}/change/"
    data = admin_form_data(client, url, **{"person_identity-0-identifier": "Bob@Example.com"})

    response = client.post(url, data)

    assert response.status_code == 302
    assert PersonIdentity.objects.get(user=cast.bob).identifier == "bob@example.com"
    event = system_event("approvals.admin.person_identifier_changed")
    assert event.actor_name == "root"
    assert admin_alarms("person_changed") == ["person identifier of approver bob changed (by root)"]


def test_accounts_are_deactivated_never_deleted_in_the_admin(cast, root):
    client = verified_client(root)

    response = client.get(f"/admin/auth/user/{cast.bob.pk}/delete/")

    assert response.status_code == 403
    assert User.objects.filter(pk=cast.bob.pk).exists()


def test_the_orm_cannot_change_who_approves_a_profile_alone(cast):
    profile = AccessProfile.objects.get(pk=cast.profile.pk)
    profile.approver_group = Group.objects.create(name="friends")

    with pytest.raises(NotAllowed) as refused:
        profile.save()

    assert refused.value.code == "second_admin_required"
    profile = AccessProfile.objects.get(pk=cast.profile.pk)
    profile.required_approvals = 2  # unchanged is fine, raising too
    profile.save()
    profile.required_approvals = 3
    profile.save()
    with pytest.raises(NotAllowed):
        AccessProfile.objects.update_or_create(
            slug=profile.slug, defaults={"required_approvals": 2}
        )
    assert AccessProfile.objects.get(pk=profile.pk).required_approvals == 3
