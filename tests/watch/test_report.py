import json
from datetime import timedelta

import pytest

from approvals.errors import NotAllowed
from approvals.models import ObservedUse
from approvals.report import incident_report_json, incident_report_markdown
from tests.watch.conftest import event_for
from tests.watch.helpers import active_request, revoked_request


def test_the_report_of_a_finished_request_holds_the_whole_record(watched):
    # No injection: the worker's own AssumeRole comes through the sandbox's trail.
    access_request = revoked_request(watched.cast, watched.profile)
    record = watched.real_assume_role(access_request)
    watched.poll_until(lambda: ObservedUse.objects.filter(event_id=record["eventID"]).exists())

    report = json.loads(incident_report_json(access_request))

    assert report["request"]["status"] == "revoked"
    assert [s["approver"] for s in report["signatures"]] == ["alice", "bob"]
    assert [e["code"] for e in report["activation"]][-1] == "approvals.request.active"
    assert [e["code"] for e in report["revocation"]][-1] == "approvals.request.revoked"
    [use] = report["observed_uses"]
    assert (use["source_ip"], use["user_agent"], use["explained"]) == (
        record["sourceIPAddress"],
        record["userAgent"],
        True,
    )
    assert report["request"]["time_to_access_ms"] is not None
    assert report["request"]["time_to_revoke_ms"] is not None
    assert report["alarms"] == []
    assert report["chain_verified"] is True

    markdown = incident_report_markdown(access_request)
    assert f"| {record['sourceIPAddress']} |" in markdown
    assert "Integrity: intact" in markdown
    assert "time to revoke" in markdown


def test_the_report_lists_the_alarms_of_the_request(watched):
    access_request = revoked_request(watched.cast, watched.profile)
    late = (access_request.revoked_at + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    watched.put_events(event_for(access_request, eventTime=late))
    watched.poll_until(lambda: access_request.alarms.exists())

    report = json.loads(incident_report_json(access_request))
    [alarm] = report["alarms"]
    assert alarm["kind"] == "unexplained_use" and alarm["status"] == "open"
    assert "**NO**" in incident_report_markdown(access_request)


def test_there_is_no_report_while_access_is_still_active(watched):
    access_request = active_request(watched.cast, watched.profile)
    with pytest.raises(NotAllowed, match="for a finished request; this one is active"):
        incident_report_markdown(access_request)
