"""A message on the watch queue that no AWS service emitted (sent straight to the queue, by
whoever the queue's policy or an identity policy lets send) is set aside as poison and alarmed as
such: never read as the tampering, use or session call it claims to record."""

import json

from approvals.models import ObservedUse, PoisonMessage, SecurityAlarm, SessionActivity
from tests.watch.conftest import cloudtrail_event, event_by


def _envelope(record: dict, source: str) -> str:
    return json.dumps(
        {"source": source, "detail-type": "AWS API Call via CloudTrail", "detail": record}
    )


def test_a_message_no_aws_service_sent_is_poison_never_what_it_claims(watched):
    profile = watched.profile
    tampering = cloudtrail_event(
        "session_call_create_bucket",
        **{
            "eventSource": "events.amazonaws.com",
            "eventName": "DisableRule",
            "readOnly": False,
            "requestParameters": {"name": f"breakglass-watch-{profile.aws_target().role_name}"},
        },
    )
    session_call = cloudtrail_event(
        "session_call_create_bucket",
        **{"userIdentity.sessionContext.sessionIssuer.arn": profile.role_arn},
    )
    use = event_by(profile)
    watched.send_raw(_envelope(tampering, "forged.by.session"))
    watched.send_raw(_envelope(session_call, "forged.by.session"))
    watched.send_raw(json.dumps(use))  # a bare record: no EventBridge envelope at all

    watched.poll_until(lambda: PoisonMessage.objects.count() == 3)

    assert sorted(PoisonMessage.objects.values_list("error", flat=True)) == [
        "event source '(none)' is not an AWS service's: not from CloudTrail",
        "event source 'forged.by.session' is not an AWS service's: not from CloudTrail",
        "event source 'forged.by.session' is not an AWS service's: not from CloudTrail",
    ]
    assert set(SecurityAlarm.objects.values_list("kind", flat=True)) == {"poison_message"}
    assert not SessionActivity.objects.exists()
    assert not ObservedUse.objects.exists()


def test_the_same_records_from_aws_are_read(watched):
    watched.put_events(event_by(watched.profile))  # source aws.sts, as CloudTrail's are
    watched.poll_until(lambda: ObservedUse.objects.exists())
    assert not PoisonMessage.objects.exists()
