import base64
from urllib.parse import urlencode

import pytest

from approvals.models import AccessProfile
from tests.api.conftest import INTEGRATION, assert_error

pytestmark = pytest.mark.django_db


def _walk(api, who, url, limit=20):
    seen, pages = [], 0
    while url and pages < limit:
        response = api.get(who, url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    return seen, pages


def test_cursor_pagination_walks_every_request_once_newest_first(api):
    opened = [api.cast.open_request(ticket=f"INC-{n}") for n in range(23)]

    seen, pages = _walk(api, "audrey", "/api/v1/requests/?page_size=10")

    assert pages == 3
    assert seen == [str(r.pk) for r in reversed(opened)]


def test_filters_narrow_the_list(api):
    other_profile = AccessProfile.objects.create(
        slug="staging-admin",
        name="Staging",
        account_id=api.cast.profile.account_id,
        region="eu-west-1",
        role_arn=api.cast.profile.role_arn,
        principal_arn=api.cast.profile.principal_arn,
        approver_group=api.cast.profile.approver_group,
    )
    a = api.cast.open_request(ticket="INC-1")
    b = api.cast.open_request(ticket="INC-2", profile_slug=other_profile.slug)
    c = api.cast.open_request(ticket="INC-2", requester=api.cast.carol)
    api.post("rita", f"/api/v1/requests/{a.pk}/cancel/")

    def ids(query):
        response = api.get("audrey", f"/api/v1/requests/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=cancelled") == {str(a.pk)}
    assert ids("profile=staging-admin") == {str(b.pk)}
    assert ids("requester=carol") == {str(c.pk)}
    assert ids("ticket=INC-2") == {str(b.pk), str(c.pk)}
    assert ids("ticket=INC-2&requester=rita") == {str(b.pk)}


def test_an_unknown_status_filter_or_bad_cursor_is_refused_clearly(api):
    error = assert_error(api.get("rita", "/api/v1/requests/?status=exploded"), 400)
    assert "status" in error["fields"]
    assert_error(api.get("rita", "/api/v1/requests/?cursor=garbage"), 404, code="not_found")


@pytest.mark.parametrize("position", ["garbage", "2026-13-99T00:00:00+00:00", "\x00"])
def test_a_forged_cursor_position_is_an_invalid_cursor_not_a_server_error(api, position):
    """The cursor is base64 of client-chosen text: its position must not reach the query."""
    access_request = api.cast.open_request()
    cursor = base64.urlsafe_b64encode(urlencode({"p": position}).encode()).decode()
    endpoints = ["/api/v1/requests/", f"/api/v1/requests/{access_request.pk}/activity/"]

    for endpoint in [*endpoints, "/api/v1/alarms/"]:
        response = api.get("audrey", f"{endpoint}?{urlencode({'cursor': cursor})}")
        assert_error(response, 404, code="not_found", message="Invalid cursor")


def test_an_integration_lists_only_the_requests_it_opened(api):
    mine = api.cast.open_request(opened_by=INTEGRATION)
    api.cast.open_request(ticket="INC-7")

    seen, _ = _walk(api, INTEGRATION, "/api/v1/requests/")

    assert seen == [str(mine.pk)]


def test_a_page_of_requests_costs_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    for n in range(30):
        api.cast.open_request(ticket=f"INC-{n}")
    api.get("alice", "/api/v1/requests/?page_size=5")

    with django_assert_max_num_queries(8):
        response = api.get("alice", "/api/v1/requests/?page_size=25")

    assert len(response.json()["results"]) == 25
