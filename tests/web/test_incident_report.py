from approvals.services.requests import request_cancel


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
