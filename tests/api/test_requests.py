import pytest

from approvals.models import AccessRequest, IdempotencyRecord, Status, TimelineEvent
from approvals.services.api_access import personal_token_revoke
from tests.api.conftest import INTEGRATION, assert_error
from tests.conftest import fresh_code

pytestmark = pytest.mark.django_db


def test_a_person_opens_a_request_for_themselves(api):
    response = api.post("rita", "/api/v1/requests/", api.open_body())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["requester"] == "rita"
    assert body["opened_by"] == ""
    assert body["profile"] == "prod-admin"
    assert body["approvals"] == []
    assert body["time_to_access_ms"] is None
    assert AccessRequest.objects.filter(pk=body["id"], requester=api.cast.requester).exists()


def test_an_integration_opens_on_behalf_of_a_named_requester_and_the_timeline_says_so(api):
    response = api.post(INTEGRATION, "/api/v1/requests/", api.open_body(requester="rita"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["requester"], body["opened_by"]) == ("rita", INTEGRATION)
    opened = TimelineEvent.objects.get(request_id=body["id"], code="approvals.request.opened")
    assert opened.detail["opened_by"] == INTEGRATION


def test_it_requires_the_requester_from_an_integration_and_refuses_unknown_ones(api):
    missing = assert_error(api.post(INTEGRATION, "/api/v1/requests/", api.open_body()), 400)
    unknown = assert_error(
        api.post(INTEGRATION, "/api/v1/requests/", api.open_body(requester="nobody")), 400
    )

    assert missing["fields"] == {"requester": ["requester is required for integration keys"]}
    assert unknown["fields"] == {"requester": ["no user 'nobody'"]}


def test_it_refuses_a_person_opening_a_request_for_someone_else(api):
    assert_error(
        api.post("oscar", "/api/v1/requests/", api.open_body(requester="rita")),
        403,
        message="for themselves only",
    )


def test_validation_errors_name_the_problem_per_field(api):
    error = assert_error(
        api.post("rita", "/api/v1/requests/", api.open_body(duration_minutes=90, ticket="nope")),
        400,
        code="invalid",
    )

    assert error["fields"]["duration_minutes"] == [
        "duration_minutes must be between 1 and 60 for profile prod-admin"
    ]
    assert "INC-1234" in error["fields"]["ticket"][0]


def test_missing_fields_are_named_in_the_message(api):
    error = assert_error(api.post("rita", "/api/v1/requests/", {}), 400, code="invalid")

    assert set(error["fields"]) == {"profile", "ticket", "justification", "duration_minutes"}
    assert "profile:" in error["message"]


def test_a_malformed_body_unknown_path_and_wrong_method_use_the_error_shape(api):
    malformed = api.client.generic(
        "POST",
        "/api/v1/requests/",
        data="{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.secrets['rita']}",
    )
    assert_error(malformed, 400, code="malformed_body")
    assert_error(api.get("rita", "/api/v1/nothing-here/"), 404, code="not_found")
    assert_error(api.call("rita", "DELETE", "/api/v1/requests/"), 405, code="method_not_allowed")
    assert_error(
        api.get("rita", "/api/v1/requests/not-a-uuid/"), 404, message="no request not-a-uuid"
    )


def test_the_same_idempotency_key_and_body_returns_the_first_response(api):
    body = api.open_body()
    first = api.post("rita", "/api/v1/requests/", body, idempotency_key="incident-77-open")
    retry = api.post("rita", "/api/v1/requests/", body, idempotency_key="incident-77-open")

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert AccessRequest.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_is_a_conflict(api):
    api.post("rita", "/api/v1/requests/", api.open_body(), idempotency_key="k-1")

    error = assert_error(
        api.post("rita", "/api/v1/requests/", api.open_body(ticket="INC-9"), idempotency_key="k-1"),
        409,
        code="idempotency_conflict",
    )

    assert "'k-1'" in error["message"]
    assert AccessRequest.objects.count() == 1


def test_idempotency_keys_belong_to_one_caller_and_refusals_are_not_remembered(api):
    refused = api.post("rita", "/api/v1/requests/", api.open_body(ticket="x"), idempotency_key="k")
    corrected = api.post("rita", "/api/v1/requests/", api.open_body(), idempotency_key="k")
    other = api.post(
        INTEGRATION, "/api/v1/requests/", api.open_body(requester="rita"), idempotency_key="k"
    )

    assert refused.status_code == 400
    assert corrected.status_code == 201
    assert other.status_code == 201 and other.json()["id"] != corrected.json()["id"]
    assert IdempotencyRecord.objects.count() == 2


def test_a_requests_detail_shows_approvals_and_timestamps(api):
    access_request = api.cast.open_request()
    api.post(
        "alice",
        f"/api/v1/requests/{access_request.pk}/approve/",
        {"otp": fresh_code(api.cast.alice)},
    )
    response = api.post(
        "bob", f"/api/v1/requests/{access_request.pk}/approve/", {"otp": fresh_code(api.cast.bob)}
    )

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "approved"
    assert [a["approver"] for a in body["approvals"]] == ["alice", "bob"]
    assert body["approved_at"] is not None
    assert body["activated_at"] is None


@pytest.mark.parametrize(
    ("who", "otp", "code", "message"),
    [
        ("rita", None, "self_approval", "you cannot approve your own request"),
        ("alice", "12", "otp_malformed", "must be 6 digits"),
    ],
)
def test_refused_signatures_explain_why(api, who, otp, code, message):
    access_request = api.cast.open_request()
    user = api.cast.requester if who == "rita" else api.cast.alice
    response = api.post(
        who, f"/api/v1/requests/{access_request.pk}/approve/", {"otp": otp or fresh_code(user)}
    )

    assert_error(response, 403, code=code, message=message)


def test_a_replayed_otp_code_is_refused_with_a_clear_message(api):
    first, second = api.cast.open_request(), api.cast.open_request(ticket="INC-2")
    code = fresh_code(api.cast.alice)
    api.post("alice", f"/api/v1/requests/{first.pk}/approve/", {"otp": code})

    assert_error(
        api.post("alice", f"/api/v1/requests/{second.pk}/approve/", {"otp": code}),
        403,
        code="otp_replayed",
        message="OTP code already used",
    )


def test_approve_reject_revoke_and_credentials_need_an_otp_in_the_body(api):
    access_request = api.cast.open_request()
    for action in ("approve", "reject", "revoke", "credentials"):
        who = "rita" if action in ("revoke", "credentials") else "alice"
        error = assert_error(
            api.post(who, f"/api/v1/requests/{access_request.pk}/{action}/", {}), 400
        )
        assert "otp" in error["fields"], action


def test_a_rejection_and_a_cancellation_end_the_request(api):
    rejected, cancelled = api.cast.open_request(), api.cast.open_request(ticket="INC-3")
    api.post(
        "alice",
        f"/api/v1/requests/{rejected.pk}/reject/",
        {"otp": fresh_code(api.cast.alice), "reason": "not an incident"},
    )
    response = api.post("rita", f"/api/v1/requests/{cancelled.pk}/cancel/")

    assert response.json()["status"] == "cancelled"
    rejected.refresh_from_db()
    assert rejected.status == Status.REJECTED
    assert_error(
        api.post("rita", f"/api/v1/requests/{cancelled.pk}/cancel/"),
        403,
        message="only a pending request can be cancelled",
    )


def test_it_answers_401_without_or_with_bad_credentials(api):
    none = api.get(None, "/api/v1/requests/")
    assert_error(none, 401, code="not_authenticated")
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    api.secrets["forged"] = "bgp_" + "x" * 43
    assert_error(api.get("forged", "/api/v1/requests/"), 401, message="unknown API token")
    api.secrets["odd"] = "Basic abc"
    assert_error(api.get("odd", "/api/v1/requests/"), 401, code="authentication_failed")


def test_a_revoked_token_stops_working_at_once(api):
    token = api.cast.requester.api_tokens.get()
    assert api.get("rita", "/api/v1/me/").json() == {"kind": "person", "name": "rita"}

    personal_token_revoke(token_id=token.pk, user=api.cast.requester)

    assert_error(api.get("rita", "/api/v1/me/"), 401, message="this API token was revoked")


def test_an_expired_or_revoked_integration_key_is_refused(api):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.models import IntegrationKey
    from approvals.services.api_access import integration_key_revoke

    key = IntegrationKey.objects.get(name=INTEGRATION)
    IntegrationKey.objects.filter(pk=key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_error(api.get(INTEGRATION, "/api/v1/me/"), 401, message="expired")

    integration_key_revoke(integration_key_id=key.pk)
    assert_error(api.get(INTEGRATION, "/api/v1/me/"), 401, message="was revoked")


def test_profiles_lists_what_can_be_requested(api):
    response = api.get(INTEGRATION, "/api/v1/profiles/")

    assert response.status_code == 200
    assert [p["slug"] for p in response.json()] == ["prod-admin"]
    assert response.json()[0]["max_duration_minutes"] == 60
