import io
import json

import pytest
from django.core.management import CommandError, call_command

from approvals.models import Drill

pytestmark = pytest.mark.django_db(transaction=True)


def drill(*args) -> str:
    out = io.StringIO()
    call_command("drill", *args, stdout=out)
    return out.getvalue()


def test_a_sandbox_drill_runs_the_whole_procedure_and_stores_its_figures(live):
    live.start_worker()

    output = drill(live.aws.profile.slug, "--auto-sign", "--step-timeout", "30")

    assert "Drill passed" in output
    assert "credentials refused by AWS" in output
    stored = Drill.objects.get()
    assert stored.passed and stored.request.is_drill
    assert None not in (
        stored.time_to_approve_ms,
        stored.time_to_access_ms,
        stored.time_to_revoke_ms,
        stored.time_to_refused_ms,
    )


def test_a_drill_whose_aws_refuses_the_revocation_fails_loudly(live):
    # AWS refuses the broker's deny on this role, so the revocation cannot be confirmed.
    iam = live.aws.sandbox.client("iam")
    refusal = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "iam:PutRolePolicy", "Resource": live.aws.profile.role_arn}
        ],
    }
    iam.put_user_policy(
        UserName="breakglass-broker",
        PolicyName="drill-test-refusal",
        PolicyDocument=json.dumps(refusal),
    )
    live.start_worker()
    try:
        with pytest.raises(CommandError, match="DRILL FAILED: REVOCATION NOT CONFIRMED"):
            drill(live.aws.profile.slug, "--auto-sign", "--step-timeout", "8")
    finally:
        iam.delete_user_policy(UserName="breakglass-broker", PolicyName="drill-test-refusal")

    stored = Drill.objects.get()
    assert not stored.passed
    assert "REVOCATION NOT CONFIRMED" in stored.failure


def test_auto_sign_is_refused_against_real_aws(cast, settings):
    settings.AWS_ENDPOINT_URL = None

    with pytest.raises(CommandError, match="auto-sign is for the sandbox only"):
        drill(cast.profile.slug, "--auto-sign")
    assert not Drill.objects.exists()
