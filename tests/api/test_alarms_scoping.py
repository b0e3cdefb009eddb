"""Alarm scoping from the attacker's side: an approver of another profile, and people involved
in the request an alarm is about, try to read and close it through the API and the pages."""

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from approvals.models import AccessProfile, AccessRequest, AlarmStatus, SecurityAlarm
from approvals.services.api_access import personal_token_create
from approvals.services.requests import request_approve
from tests.administration import administration_alarms_cleared
from tests.conftest import ACCOUNT_ID, fresh_code, make_user
from tests.web.conftest import verified_client

pytestmark = pytest.mark.django_db


@dataclass
class Alarms:
    about_request: SecurityAlarm  # profile A, about carol's request that alice signed
    profile_b: SecurityAlarm
    system_wide: SecurityAlarm
    access_request: AccessRequest
    bea: User  # approves profile B only


def _alarm(title: str, **fields) -> SecurityAlarm:
    return SecurityAlarm.objects.create(
        kind="unexplained_use",
        title=title,
        dedup_key=title,
        opened_at=timezone.now(),
        **fields,
    )


@pytest.fixture
def alarms(cast, api) -> Alarms:
    group_b = Group.objects.create(name="approvers-b")
    profile_b = AccessProfile.objects.create(
        slug="billing-admin",
        name="Billing admin",
        account_id=ACCOUNT_ID,
        region="eu-west-1",
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/breakglass-billing",
        principal_arn=f"arn:aws:iam::{ACCOUNT_ID}:user/breakglass-principal",
        max_duration_minutes=60,
        approver_group=group_b,
    )
    bea = make_user("bea", group_b)
    administration_alarms_cleared()
    api.secrets["bea"] = personal_token_create(user=bea, name="tests")
    # carol approves profile A and also needs it herself; alice signs her request.
    access_request = cast.open_request(requester=cast.carol)
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )
    return Alarms(
        about_request=_alarm(
            "use of prod-admin by carol's session",
            profile=cast.profile,
            request=access_request,
        ),
        profile_b=_alarm("AssumeRole on billing-admin with no request", profile=profile_b),
        system_wide=_alarm("the watcher is down"),
        access_request=access_request,
        bea=bea,
    )


def _titles(api, who: str) -> set[str]:
    response = api.get(who, "/api/v1/alarms/?status=open")
    assert response.status_code == 200, response.content
    return {alarm["title"] for alarm in response.json()["results"]}


def _acknowledge(api, who: str, user: User, alarm: SecurityAlarm):
    return api.post(
        who,
        f"/api/v1/alarms/{alarm.pk}/acknowledge/",
        {"otp": fresh_code(user), "note": "I looked"},
    )


def test_an_approver_of_another_profile_does_not_see_the_alarms_of_this_one(alarms, api):
    assert _titles(api, "bea") == {alarms.profile_b.title, alarms.system_wide.title}
    assert _titles(api, "bob") == {alarms.about_request.title, alarms.system_wide.title}
    assert _titles(api, "audrey") == {
        alarms.about_request.title,
        alarms.profile_b.title,
        alarms.system_wide.title,
    }


def test_an_approver_of_another_profile_cannot_acknowledge_this_ones_alarm(alarms, api):
    response = _acknowledge(api, "bea", alarms.bea, alarms.about_request)
    assert response.status_code == 404
    alarms.about_request.refresh_from_db()
    assert alarms.about_request.status == AlarmStatus.OPEN


def test_the_requester_cannot_acknowledge_the_alarm_about_their_own_request(alarms, api, cast):
    response = _acknowledge(api, "carol", cast.carol, alarms.about_request)
    assert response.status_code == 403
    assert "involved in the request" in response.content.decode()
    alarms.about_request.refresh_from_db()
    assert alarms.about_request.status == AlarmStatus.OPEN


def test_an_approver_who_signed_the_request_cannot_acknowledge_its_alarm(alarms, api, cast):
    response = _acknowledge(api, "alice", cast.alice, alarms.about_request)
    assert response.status_code == 403
    alarms.about_request.refresh_from_db()
    assert alarms.about_request.status == AlarmStatus.OPEN


def test_an_uninvolved_approver_of_the_profile_acknowledges_it(alarms, api, cast):
    response = _acknowledge(api, "bob", cast.bob, alarms.about_request)
    assert response.status_code == 200, response.content
    alarms.about_request.refresh_from_db()
    assert alarms.about_request.acknowledged_by_name == "bob"


def test_an_auditor_acknowledges_an_alarm_of_any_profile(alarms, api, cast):
    assert _acknowledge(api, "audrey", cast.auditor, alarms.profile_b).status_code == 200


def test_a_requester_in_an_unrelated_group_sees_no_alarm_on_the_dashboard(alarms, cast):
    cast.requester.groups.add(Group.objects.create(name="staff-chat"))
    page = verified_client(cast.requester).get("/")
    assert page.status_code == 200
    for alarm in (alarms.about_request, alarms.profile_b, alarms.system_wide):
        assert alarm.title.encode() not in page.content


def test_the_dashboard_shows_an_approver_only_their_profiles_alarms(alarms):
    page = verified_client(alarms.bea).get("/")
    assert page.status_code == 200
    assert alarms.profile_b.title.encode() in page.content
    assert alarms.system_wide.title.encode() in page.content
    assert alarms.about_request.title.encode() not in page.content
