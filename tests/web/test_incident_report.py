import json

from approvals.services.requests import request_cancel
from approvals.services.scopes import profile_networks_set, scope_set


def test_a_finished_request_offers_its_incident_report_as_markdown_and_json(as_user, cast):
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)
    client = as_user(cast.alice)

    page = client.get(f"/requests/{access_request.pk}/").content.decode()
    markdown = client.get(f"/requests/{access_request.pk}/report.md")
    document = client.get(f"/requests/{access_request.pk}/report.json")

    assert "Incident report" in page
    assert markdown.status_code == 200
    assert "INC-1234" in markdown.content.decode()
    assert 'filename="incident-INC-1234-' in markdown["Content-Disposition"]
    assert document.json()["request"]["status"] == "cancelled"


def test_an_unfinished_request_has_no_report_yet(as_user, cast):
    access_request = cast.open_request()
    client = as_user(cast.requester)

    assert "Incident report" not in client.get(f"/requests/{access_request.pk}/").content.decode()
    assert client.get(f"/requests/{access_request.pk}/report.md").status_code == 404


def test_outsiders_cannot_read_a_report(as_user, cast):
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)

    assert (
        as_user(cast.outsider).get(f"/requests/{access_request.pk}/report.json").status_code == 404
    )


def test_the_report_shows_the_scope_in_full_and_that_both_network_lists_apply(as_user, cast):
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    profile_networks_set(profile_slug=cast.profile.slug, networks=["10.0.0.0/8"])
    scope_set(
        profile_slug=cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(document),
        networks=["10.1.0.0/16"],
        make_default=True,
    )
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)
    client = as_user(cast.alice)

    report = client.get(f"/requests/{access_request.pk}/report.json").json()
    markdown = client.get(f"/requests/{access_request.pk}/report.md").content.decode()

    assert report["scope"]["name"] == "read-only"
    assert report["scope"]["policy"] == document
    assert report["deadlines"] == {"original": None, "final": None}
    assert "- Scope: read-only" in markdown
    assert '"Action": "s3:GetObject"' in markdown
    assert "- Works from: only 10.0.0.0/8 (profile) and within 10.1.0.0/16 (scope)" in markdown


def test_a_report_of_a_request_without_scopes_says_the_whole_role_from_anywhere(as_user, cast):
    access_request = cast.open_request()
    request_cancel(access_request_id=access_request.pk, actor=cast.requester)
    markdown = as_user(cast.alice).get(f"/requests/{access_request.pk}/report.md")
    assert "- Scope: the whole role, from anywhere" in markdown.content.decode()
