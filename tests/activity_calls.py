"""Calls of a break-glass session put on the record the way the watcher records them: a
CloudTrail record (the fixture's real shape) through the parser, the recording service and the
batch seal. For surface tests that need activity without driving the AWS sandbox."""

import json
from datetime import datetime, timedelta

from django.utils import timezone

from approvals.models import AccessRequest, IssuedCredential, SessionActivity
from approvals.services.activity import activity_seal, session_call_record
from approvals.watch_events import session_call_parse
from tests.watch.conftest import cloudtrail_event


def call_record(
    access_request: AccessRequest,
    *,
    at: datetime,
    service: str = "s3",
    action: str = "ListBuckets",
    read_only: bool | None = True,
    error_code: str = "",
    parameters: dict | None = None,
    resources: list | None = None,
    user_agent: str = "aws-cli/2.15.30",
    source_ip: str = "198.51.100.24",
    access_key_id: str | None = None,
) -> dict:
    """A CloudTrail record of one call by the session the portal issued for the request."""
    profile = access_request.profile
    issued = IssuedCredential.objects.filter(request=access_request).first()
    role = profile.role_arn.rsplit("/", 1)[-1]
    session = f"{access_request.ticket}-{access_request.pk}"
    return cloudtrail_event(
        "session_call_create_bucket",
        **{
            "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": f"{service}.amazonaws.com",
            "eventName": action,
            "awsRegion": profile.region,
            "sourceIPAddress": source_ip,
            "userAgent": user_agent,
            "readOnly": read_only,
            "errorCode": error_code or None,
            "errorMessage": f"{error_code} by the test" if error_code else None,
            "requestParameters": parameters,
            "resources": resources if resources is not None else [],
            "userIdentity.arn": f"arn:aws:sts::{profile.account_id}:assumed-role/{role}/{session}",
            "userIdentity.accessKeyId": access_key_id
            or (issued.access_key_id if issued else "ASIAUNKNOWN"),
            "userIdentity.sessionContext.sessionIssuer.arn": profile.role_arn,
            "userIdentity.sessionContext.sourceIdentity": str(access_request.pk),
        },
    )


def call_put(access_request: AccessRequest, *, at: datetime, **spec) -> SessionActivity:
    """Record one call at `at` (not sealed yet), as the watcher would on receiving it."""
    record = call_record(access_request, at=at, **spec)
    row = session_call_record(
        call=session_call_parse(json.dumps(record)), profile=access_request.profile
    )
    assert row is not None, spec
    return row


def calls_record(
    access_request: AccessRequest, *specs: dict, start: datetime | None = None
) -> None:
    """Record each call (one second apart from `start`, by default the activation, in the order
    given), then seal the batch."""
    start = start or access_request.activated_at or timezone.now()
    for offset, spec in enumerate(specs):
        call_put(access_request, at=start + timedelta(seconds=offset), **spec)
    activity_seal(access_request_id=access_request.pk)
