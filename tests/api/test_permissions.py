"""Caller kind x action x expected status, on a pending request pagerduty opened for rita."""

import pytest

from approvals.models import AccessRequest, SecurityAlarm
from tests.api.conftest import INTEGRATION, assert_error
from tests.conftest import fresh_code

pytestmark = pytest.mark.django_db

USERS = {"rita", "alice", "bob", "carol", "oscar", "audrey"}


def _otp(api, who):
    if who in USERS:
        return fresh_code(getattr(api.cast, _CAST_NAMES[who]))
    return "123456"


_CAST_NAMES = {
    "rita": "requester",
    "alice": "alice",
    "bob": "bob",
    "carol": "carol",
    "oscar": "outsider",
    "audrey": "auditor",
}

CALLERS = ["anonymous", "rita", "alice", "oscar", "audrey", "pagerduty", "servicenow"]

# action -> expected status per caller, in CALLERS order.
TABLE = {
    "retrieve": [401, 200, 200, 404, 200, 200, 404],
    "timeline": [401, 200, 200, 404, 200, 200, 404],
    "approve": [401, 403, 200, 404, 403, 403, 403],
    "reject": [401, 403, 200, 404, 403, 403, 403],
    "cancel": [401, 200, 403, 404, 403, 200, 404],
    "revoke": [401, 403, 403, 404, 403, 403, 403],
    "credentials": [401, 403, 403, 404, 403, 403, 403],
    "list_sees_it": [401, 200, 200, 200, 200, 200, 200],
    "alarms": [401, 403, 200, 403, 200, 403, 403],
    "acknowledge_alarm": [401, 403, 200, 403, 200, 403, 403],
}
CASES = [
    (action, caller, expected)
    for action, statuses in TABLE.items()
    for caller, expected in zip(CALLERS, statuses, strict=True)
]


def _act(api, action: str, caller: str, access_request: AccessRequest):
    who = None if caller == "anonymous" else caller
    base = f"/api/v1/requests/{access_request.pk}/"
    otp = _otp(api, caller)
    if action == "retrieve":
        return api.get(who, base)
    if action == "timeline":
        return api.get(who, base + "timeline/")
    if action == "approve":
        return api.post(who, base + "approve/", {"otp": otp})
    if action == "reject":
        return api.post(who, base + "reject/", {"otp": otp, "reason": "not an incident"})
    if action == "cancel":
        return api.post(who, base + "cancel/")
    if action == "revoke":
        return api.post(who, base + "revoke/", {"otp": otp, "reason": "done"})
    if action == "credentials":
        return api.post(who, base + "credentials/", {"otp": otp})
    if action == "list_sees_it":
        return api.get(who, "/api/v1/requests/")
    if action in ("alarms", "acknowledge_alarm"):
        alarm = SecurityAlarm.objects.create(
            kind="unexplained_use",
            title="AssumeRole with no approved request",
            dedup_key=f"test-{access_request.pk}",
            opened_at=access_request.created_at,
        )
        if action == "alarms":
            return api.get(who, "/api/v1/alarms/?status=open")
        return api.post(
            who, f"/api/v1/alarms/{alarm.pk}/acknowledge/", {"otp": otp, "note": "looking"}
        )
    raise AssertionError(action)


@pytest.mark.parametrize(("action", "caller", "expected"), CASES)
def test_each_caller_gets_exactly_the_status_its_rights_allow(api, action, caller, expected):
    access_request = api.cast.open_request(opened_by=INTEGRATION)

    response = _act(api, action, caller, access_request)

    if expected >= 400:
        assert_error(response, expected)
    else:
        assert response.status_code == expected, response.content
    if action == "list_sees_it" and expected == 200:
        ids = {row["id"] for row in response.json()["results"]}
        visible = caller in ("rita", "alice", "audrey", INTEGRATION)
        assert (str(access_request.pk) in ids) == visible


def test_an_integration_key_can_never_sign_even_for_a_request_it_opened(api):
    access_request = api.cast.open_request(opened_by=INTEGRATION)

    error = assert_error(
        api.post(INTEGRATION, f"/api/v1/requests/{access_request.pk}/approve/", {"otp": "1"}),
        403,
    )

    assert "integration keys cannot approve" in error["message"]
    access_request.refresh_from_db()
    assert access_request.status == "pending"
