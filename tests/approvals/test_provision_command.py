import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.aws_profile import sandbox_profile


@pytest.fixture
def provisioned(cast, aws_sandbox, settings, tmp_path):
    aws = sandbox_profile(
        aws_sandbox=aws_sandbox,
        settings=settings,
        tmp_path=tmp_path,
        approver_group=cast.profile.approver_group,
    )
    settings.AWS_PROVISIONER_CREDENTIALS_FILE = str(aws_sandbox.state_dir / "provisioner.json")
    return aws


def provision(*args) -> str:
    out = io.StringIO()
    call_command("provision_profile", *args, stdout=out)
    return out.getvalue()


def widen_trust(aws) -> None:
    iam = aws.sandbox.client("iam")
    role_name = aws.profile.role_arn.rsplit("/", 1)[-1]
    document = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    for statement in document["Statement"]:
        statement.pop("Condition", None)
    iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(document))


def test_it_reports_a_provisioned_profile_as_expected(provisioned):
    output = provision(provisioned.profile.slug, "--check")

    assert "provisioned as expected" in output


def test_check_reports_drift_changes_nothing_and_fix_drift_repairs_it(provisioned):
    widen_trust(provisioned)

    with pytest.raises(CommandError, match="has drift"):
        provision(provisioned.profile.slug, "--check")
    with pytest.raises(CommandError, match="has drift"):
        provision(provisioned.profile.slug, "--check")

    provision(provisioned.profile.slug, "--fix-drift")
    assert "provisioned as expected" in provision(provisioned.profile.slug, "--check")


def test_it_names_an_unknown_profile(provisioned):
    with pytest.raises(CommandError, match="unknown access profile 'nope'"):
        provision("nope")
