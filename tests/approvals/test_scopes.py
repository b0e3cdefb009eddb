"""Scopes and networks as administrators define them and requesters pick them: every bad input
refused with a specific reason and nothing stored; what the approvers sign covers the scope, so
an administrator's edit while a request waits makes the earlier signatures stale."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from approvals.errors import RequestInvalid
from approvals.models import AccessScope, Approval, Status, TimelineEvent
from approvals.services.requests import request_approve
from approvals.services.scopes import profile_networks_set, scope_set
from tests.conftest import fresh_code

pytestmark = pytest.mark.django_db

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:GetObject"], "Resource": "*"}
    ],
}


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(*actions, **extra) -> dict:
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*", **extra}


def refused(cast, field: str, **values) -> list[str]:
    """The problems named for `field`; the scope is not stored."""
    before = AccessScope.objects.count()
    arguments = {"profile_slug": cast.profile.slug, "name": "read-only", **values}
    with pytest.raises(RequestInvalid) as excinfo:
        scope_set(**arguments)
    assert AccessScope.objects.count() == before
    assert field in excinfo.value.fields, excinfo.value.fields
    return excinfo.value.fields[field]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "a policy is a JSON object"),
        (json.dumps({"Version": "2012-10-17"}), "no Statement"),
        (policy(allow("s3:GetObjekt")), "Unknown action s3:GetObjekt"),
        (policy(allow("s3:getobject")), "write 's3:GetObject' as AWS spells it"),
        (policy(allow("nosuch:Thing")), "Unknown prefix nosuch"),
        (policy({**allow("s3:GetObject"), "Effect": "Permit"}), "Effect must be either"),
        (json.dumps({"Statement": [allow("s3:GetObject")]}), "NO_VERSION"),
        (policy(allow("s3:GetObject", Principal="*")), "names no Principal"),
        (policy(allow("s3:GetObject", Sid="BreakGlassMine")), "are the portal's own"),
        (
            policy(allow("s3:GetObject", Condition={"IpAdress": {"aws:SourceIp": "1.2.3.4"}})),
            "UNKNOWN_OPERATOR",
        ),
        (
            policy({**allow("s3:GetObject"), "Resource": "arn:aws:s3:::bucket-without-key"}),
            "RESOURCE_MISMATCH",
        ),
    ],
)
def test_a_policy_aws_would_refuse_or_misread_is_refused_with_the_reason(cast, text, expected):
    problems = refused(cast, "policy", policy_text=text)
    assert any(expected in problem for problem in problems), problems


def test_a_policy_over_awss_session_policy_size_is_refused(cast):
    actions = sorted(
        f"ec2:{name}"
        for name in [
            "DescribeInstances",
            "DescribeVolumes",
            "DescribeSnapshots",
            "DescribeImages",
            "DescribeVpcs",
            "DescribeSubnets",
            "DescribeSecurityGroups",
            "DescribeRouteTables",
            "DescribeAddresses",
            "DescribeKeyPairs",
            "DescribeTags",
            "DescribeRegions",
            "DescribeNetworkInterfaces",
        ]
    )
    big = policy(*[allow(action, Sid=f"S{n}") for n, action in enumerate(actions * 3)])
    problems = refused(cast, "policy", policy_text=big)
    assert "AWS takes at most 2048" in problems[0]


@pytest.mark.parametrize(
    ("arns", "expected"),
    [
        (["arn:aws:iam::123456789012:role/not-a-policy"], "is not an IAM managed policy ARN"),
        (["arn:aws:iam::999999999999:policy/elsewhere"], "in another account"),
        ([f"arn:aws:iam::aws:policy/P{n}" for n in range(11)], "at most 10 managed policies"),
    ],
)
def test_managed_policy_arns_are_checked(cast, arns, expected):
    field = "policy" if len(arns) > 10 else "managed_policy_arns"
    problems = refused(cast, field, managed_policy_arns=arns)
    assert any(expected in problem for problem in problems), problems


def test_a_scope_needs_a_name_and_something_that_narrows(cast):
    assert "lower-case letters" in refused(cast, "name", name="Read Only", policy_text=policy())[0]
    assert "give a policy document" in refused(cast, "policy")[0]


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.0.0.1/8", "has host bits set; the network is 10.0.0.0/8"),
        ("not-a-network", "not a network in CIDR notation"),
        ("0.0.0.0/0", "is every address"),
    ],
)
def test_networks_are_checked(cast, cidr, expected):
    problems = refused(cast, "networks", policy_text=json.dumps(READ_ONLY), networks=[cidr])
    assert any(expected in problem for problem in problems), problems
    with pytest.raises(RequestInvalid) as excinfo:
        profile_networks_set(profile_slug=cast.profile.slug, networks=[cidr])
    assert any(expected in p for p in excinfo.value.fields["networks"])
    cast.profile.refresh_from_db()
    assert cast.profile.allowed_networks == []


def test_one_default_per_profile_and_requests_get_it_unless_they_name_another(cast):
    scope_set(
        profile_slug=cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        make_default=True,
    )
    scope_set(
        profile_slug=cast.profile.slug,
        name="full",
        policy_text=policy(allow("*")),
        make_default=True,
    )
    defaults = AccessScope.objects.filter(profile=cast.profile, is_default=True)
    assert list(defaults.values_list("name", flat=True)) == ["full"]

    assert cast.open_request().scope.name == "full"
    assert cast.open_request(scope="read-only").scope.name == "read-only"
    with pytest.raises(RequestInvalid) as excinfo:
        cast.open_request(scope="admin")
    assert excinfo.value.fields["scope"] == [
        "profile prod-admin offers no scope 'admin' (it offers: full, read-only)"
    ]


def test_a_profile_with_scopes_but_no_default_needs_a_choice(cast):
    scope_set(profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    with pytest.raises(RequestInvalid) as excinfo:
        cast.open_request()
    assert "has no default scope: choose one of read-only" in excinfo.value.fields["scope"][0]


def test_a_profile_without_scopes_grants_the_whole_role_with_the_digest_of_before(cast):
    access_request = cast.open_request()
    assert access_request.scope is None
    assert access_request.scope_content() is None
    with pytest.raises(RequestInvalid):
        cast.open_request(scope="read-only")


def test_the_digest_covers_the_scope_and_an_edit_makes_earlier_signatures_stale(cast):
    """Acceptance: an approval of the old content does not count after an admin edits it."""
    scope_set(
        profile_slug=cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        make_default=True,
    )
    access_request = cast.open_request()
    before = access_request.content_digest()
    request_approve(
        access_request_id=access_request.pk, approver=cast.alice, otp_code=fresh_code(cast.alice)
    )

    widened = {**READ_ONLY, "Statement": [allow("s3:GetObject", "s3:PutObject")]}
    scope_set(profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(widened))
    access_request.refresh_from_db()
    after = access_request.content_digest()
    assert after != before
    changed = TimelineEvent.objects.get(
        request=access_request, code="approvals.request.content_changed"
    )
    assert changed.detail["stale_signatures"] == 1
    assert changed.detail["content_digest"] == after

    request_approve(
        access_request_id=access_request.pk, approver=cast.bob, otp_code=fresh_code(cast.bob)
    )
    access_request.refresh_from_db()
    assert access_request.status == Status.PENDING  # alice signed the old content
    request_approve(
        access_request_id=access_request.pk, approver=cast.carol, otp_code=fresh_code(cast.carol)
    )
    access_request.refresh_from_db()
    assert access_request.status == Status.APPROVED
    digests = dict(
        Approval.objects.filter(request=access_request).values_list(
            "approver_name", "content_digest"
        )
    )
    assert digests == {"alice": before, "bob": after, "carol": after}


def test_the_profiles_networks_are_signed_too(cast):
    access_request = cast.open_request()
    before = access_request.content_digest()
    profile_networks_set(profile_slug=cast.profile.slug, networks=["203.0.113.0/24"])
    access_request.refresh_from_db()
    assert access_request.content_digest() != before
    assert access_request.scope_content()["profile_networks"] == ["203.0.113.0/24"]
    profile_networks_set(profile_slug=cast.profile.slug, networks=None)
    access_request.refresh_from_db()
    assert access_request.content_digest() == before


def test_the_commands_set_scopes_and_networks_and_explain_refusals(cast, tmp_path):
    document = tmp_path / "read-only.json"
    document.write_text(json.dumps(READ_ONLY))
    out = StringIO()
    call_command(
        "profile_scope", cast.profile.slug, "read-only", "--policy-file", str(document),
        "--default", stdout=out,
    )  # fmt: skip
    assert out.getvalue().strip() == "scope read-only (default) of prod-admin: revision 1"
    call_command(
        "profile_scope", cast.profile.slug, "ops", "--managed-arn",
        "arn:aws:iam::aws:policy/ReadOnlyAccess", stdout=out,
    )  # fmt: skip
    assert AccessScope.objects.get(name="ops").managed_policy_arns == [
        "arn:aws:iam::aws:policy/ReadOnlyAccess"
    ]
    call_command("profile_networks", cast.profile.slug, "127.0.0.0/8", "::1/128", stdout=out)
    assert "sessions work from 127.0.0.0/8, ::1/128" in out.getvalue()

    with pytest.raises(CommandError, match="give either CIDRs or --any"):
        call_command("profile_networks", cast.profile.slug)
    with pytest.raises(CommandError, match="has host bits set"):
        call_command("profile_networks", cast.profile.slug, "127.0.0.1/8")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("profile_scope", cast.profile.slug, "x1", "--policy-file", "/nonexistent")
    with pytest.raises(CommandError, match="Unknown action"):
        document.write_text(policy(allow("s3:Nope")))
        call_command("profile_scope", cast.profile.slug, "read-only", "--policy-file", document)
    assert AccessScope.objects.get(name="read-only").revision == 1
    cast.profile.refresh_from_db()
    assert cast.profile.allowed_networks == ["127.0.0.0/8", "::1/128"]
    call_command("profile_networks", cast.profile.slug, "--any", stdout=out)
    cast.profile.refresh_from_db()
    assert cast.profile.allowed_networks == []


def test_a_scopes_networks_lie_within_the_profiles_and_the_profile_cannot_leave_them(cast):
    profile_networks_set(profile_slug=cast.profile.slug, networks=["10.0.0.0/8"])
    problems = refused(
        cast, "networks", policy_text=json.dumps(READ_ONLY), networks=["192.168.0.0/16"]
    )
    assert problems == ["192.168.0.0/16 is not within the profile's networks (10.0.0.0/8)"]
    scope_set(
        profile_slug=cast.profile.slug,
        name="read-only",
        policy_text=json.dumps(READ_ONLY),
        networks=["10.1.0.0/16"],
    )
    with pytest.raises(RequestInvalid) as excinfo:
        profile_networks_set(profile_slug=cast.profile.slug, networks=["172.16.0.0/12"])
    assert excinfo.value.fields["networks"] == [
        "scope read-only: 10.1.0.0/16 is not within the profile's networks (172.16.0.0/12)"
    ]
    cast.profile.refresh_from_db()
    assert cast.profile.allowed_networks == ["10.0.0.0/8"]
