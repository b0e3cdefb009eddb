"""CSV injection through CloudTrail: the userAgent of an AssumeRole call is chosen by whoever made
it, and the watcher records it on the request's timeline; export.csv must not hand it to a
spreadsheet as a formula."""

from approvals.models import ObservedUse
from tests.watch.conftest import event_for
from tests.watch.helpers import active_request
from tests.web.test_export_injection import HYPERLINK, export_rows


def test_a_formula_in_cloudtrails_user_agent_on_an_observed_use_is_neutralised(watched):
    access_request = active_request(watched.cast, watched.profile)
    record = event_for(access_request, userAgent=HYPERLINK)
    watched.put_events(record)
    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=record["eventID"]).exists())

    rows = export_rows(watched.cast.auditor, access_request)

    # (the sandbox may report the worker's own AssumeRole too: that row has another user agent)
    [assumed] = [row for row in rows if "HYPERLINK" in row["user_agent"]]
    assert assumed["code"] == "approvals.role.assumed"
    assert assumed["user_agent"] == "'" + HYPERLINK
    assert not any(
        cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values()
    )
