"""AWS authorises a call that names an IAM group against the group's ARN (resource type "group"
in the service authorization reference), AddUserToGroup included though it names a user too."""

import uuid

import pytest
from botocore.exceptions import ClientError

from ..helpers import error_code_of


def _adder(aws_sandbox, name: str, resource: str):
    """A user allowed iam:AddUserToGroup on `resource` only, and its IAM client."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:AddUserToGroup", "Resource": resource}],
    }
    keys = aws_sandbox.new_user(name, policy)
    return aws_sandbox.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )


def test_add_user_to_group_is_authorised_against_the_group(aws_sandbox):
    iam = aws_sandbox.client("iam", region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    member, ops, other = f"member-{suffix}", f"ops-{suffix}", f"other-{suffix}"
    iam.create_user(UserName=member)
    # With a path: the group's ARN as AWS writes it is what the policy names.
    ops_arn = iam.create_group(GroupName=ops, Path="/teams/")["Group"]["Arn"]
    iam.create_group(GroupName=other)
    account = aws_sandbox.account_id
    by_group = _adder(aws_sandbox, f"adder-group-{suffix}", ops_arn)
    by_user = _adder(aws_sandbox, f"adder-user-{suffix}", f"arn:aws:iam::{account}:user/{member}")

    by_group.add_user_to_group(GroupName=ops, UserName=member)

    with pytest.raises(ClientError) as other_group:
        by_group.add_user_to_group(GroupName=other, UserName=member)
    with pytest.raises(ClientError) as the_user_only:
        by_user.add_user_to_group(GroupName=other, UserName=member)
    assert error_code_of(other_group) == error_code_of(the_user_only) == "AccessDenied"
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=member)["Groups"]] == [ops]
