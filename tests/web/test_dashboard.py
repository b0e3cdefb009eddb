import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import SecurityAlarm
from approvals.services.requests import request_approve
from tests.conftest import fresh_code
from tests.web.helpers import active

pytestmark = pytest.mark.django_db


def test_requests_waiting_for_my_signature_come_first_oldest_first_with_reasons(cast, as_user):
    older = cast.open_request(ticket="INC-1")
    newer = cast.open_request(ticket="INC-2")
    signed = cast.open_request(ticket="INC-3")
    mine = cast.open_request(ticket="INC-4", requester=cast.alice)
    request_approve(
        access_request_id=signed.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )
    response = as_user(cast.alice).get(reverse("dashboard"))
    pending = response.context["board"].pending
    assert [r.request.ticket for r in pending[:2]] == [older.ticket, newer.ticket]
    blockers = {r.request.ticket: r.signing_blocker for r in pending}
    assert blockers[signed.ticket] == "you have already signed it"
    assert blockers[mine.ticket] == "this is your own request"
    html = response.content.decode()
    assert html.count("Review and sign") == 2
    assert "Cannot sign: this is your own request" in html
    assert "data-countdown" in html and "min" in html


def test_an_auditor_sees_everything_but_is_told_they_are_not_in_the_group(cast, as_user):
    cast.open_request()
    html = as_user(cast.auditor).get(reverse("dashboard")).content.decode()
    assert "Cannot sign: you are not in the approver group of prod-admin" in html


def test_an_outsider_sees_only_their_own_requests_and_useful_empty_states(cast, as_user):
    cast.open_request()
    html = as_user(cast.outsider).get(reverse("dashboard")).content.decode()
    assert "INC-1234" not in html
    assert "Nothing is waiting for a signature" in html
    assert "No access is granted right now" in html
    assert "file a request" in html


def test_active_grants_show_their_remaining_time(cast, as_user):
    grant = active(cast, ticket="INC-77")
    response = as_user(cast.bob).get(reverse("dashboard"))
    assert [r.ticket for r in response.context["board"].active] == [grant.ticket]
    assert f'data-countdown="{grant.expires_at.isoformat()}"' in response.content.decode()


def test_the_history_filters_and_paginates(cast, as_user):
    for n in range(30):
        cast.open_request(ticket=f"INC-{n}")
    cast.open_request(ticket="OPS-9", requester=cast.carol)
    client = as_user(cast.auditor)
    page = client.get(reverse("dashboard")).context["board"].history
    assert page.paginator.count == 31 and len(page.object_list) == 25
    second = client.get(reverse("dashboard"), {"page": 2}).context["board"].history
    assert len(second.object_list) == 6
    for query, expected in (
        ({"ticket": "ops-9"}, ["OPS-9"]),
        ({"requester": "carol"}, ["OPS-9"]),
        ({"status": "cancelled"}, []),
        ({"profile": "prod-admin", "ticket": "INC-3"}, ["INC-3"]),
        ({"since": timezone.now().date().isoformat(), "ticket": "INC-4"}, ["INC-4"]),
        ({"until": "2000-01-01"}, []),
    ):
        response = client.get(reverse("dashboard"), query)
        assert [r.ticket for r in response.context["board"].history] == expected, query
    html = client.get(reverse("dashboard"), {"status": "cancelled"}).content.decode()
    assert "No request matches these filters" in html
    html = client.get(reverse("dashboard"), {"requester": "rita"}).content.decode()
    assert "requester=rita&amp;page=2" in html


def test_open_alarms_are_shown_to_approvers_and_auditors_only(cast, as_user):
    SecurityAlarm.objects.create(
        kind="unexplained_use",
        title="Break-glass role used without an approved request",
        dedup_key="x",
        profile=cast.profile,
        opened_at=timezone.now(),
    )
    assert b"Break-glass role used without" in as_user(cast.alice).get("/").content
    assert b"Break-glass role used without" in as_user(cast.auditor).get("/").content
    assert b"Break-glass role used without" not in as_user(cast.requester).get("/").content


def dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("dashboard"), {"page": 2}).status_code == 200
    return len(queries)


def test_the_dashboard_query_count_does_not_grow_with_the_data(cast, as_user):
    client = as_user(cast.alice)
    for n in range(10):
        cast.open_request(ticket=f"INC-{n}")
    active(cast, ticket="INC-100")
    SecurityAlarm.objects.create(kind="k", title="t", dedup_key="a", opened_at=timezone.now())
    few = dashboard_queries(client)
    for n in range(40):
        cast.open_request(ticket=f"OPS-{n}")
    active(cast, ticket="INC-101")
    SecurityAlarm.objects.create(kind="k", title="t2", dedup_key="b", opened_at=timezone.now())
    many = dashboard_queries(client)
    assert few == many
    # 14, one for the offline kits (issue 18) and one reading who is one person across
    # accounts, for all waiting rows at once
    assert many <= 16
