"""Policy documents, built by pure functions so tests can pin their exact JSON.

Times in conditions are ISO 8601 UTC with a `Z` suffix, to the second.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from awsaccess.types import AwsTarget, Grant

VERSION = "2012-10-17"
ASSUME_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]

GRANT_POLICY_PREFIX = "breakglass-grant-"
REVOCATION_POLICY_PREFIX = "breakglass-revoked-"
WATCH_NAME_PREFIX = "breakglass-watch-"
WATCH_TARGET_ID = "breakglass-watch-queue"
# Every rule the portal provisions matches only events whose source begins "aws.": EventBridge
# refuses such sources to PutEvents (NotAuthorizedForSourceException), so only AWS services emit
# them, while anyone allowed events:PutEvents may send any other source with any detail-type
# and detail, a made-up CloudTrail record included.
AWS_SOURCE_PREFIX = "aws."
ACTIVITY_RULE_PREFIX = f"{WATCH_NAME_PREFIX}calls."

# AWS's aggregate size limits for inline policies (characters, whitespace excluded).
ROLE_INLINE_POLICY_LIMIT = 10_240
USER_INLINE_POLICY_LIMIT = 2_048

# A short grant gets a session policy, because AWS will not issue a session under 15 minutes.
MIN_SESSION_SECONDS = 900
# Slack for IAM propagation and clock skew when deciding a revoked session can no longer live.
REVOCATION_MARGIN = timedelta(minutes=5)

_SOURCE_IDENTITY = re.compile(r"^[\w+=,.@-]{2,64}$")
_REVOCATION_NAME = re.compile(
    r"^breakglass-revoked-(?:before-(?P<before>\d{8}T\d{6}Z)|(?P<request_id>[\w+=,.@-]+))"
    r"-until-(?P<until>\d{8}T\d{6}Z)$"
)
_NAME_TIME = "%Y%m%dT%H%M%SZ"


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(document: dict) -> str:
    """Compact JSON: AWS counts every non-whitespace character against the size limits."""
    return json.dumps(document, separators=(",", ":"))


def normalize(document: Any) -> Any:
    """Compare policies as AWS means them: single-item lists equal scalars, order of keys aside."""
    if isinstance(document, str):
        text = document if document.lstrip().startswith("{") else unquote(document)
        try:
            document = json.loads(text)
        except ValueError:
            return document
    if isinstance(document, dict):
        return {key: normalize(value) for key, value in sorted(document.items())}
    if isinstance(document, list):
        items = [normalize(item) for item in document]
        return items[0] if len(items) == 1 else sorted(items, key=json.dumps)
    return document


def same_document(live: Any, expected: Any) -> bool:
    """True when AWS holds exactly what we meant (whatever its encoding of the JSON)."""
    return bool(normalize(live) == normalize(expected))


def check_source_identity(request_id: str) -> None:
    if not _SOURCE_IDENTITY.match(request_id):
        raise ValueError("request id is not a valid SourceIdentity ([\\w+=,.@-]{2,64})")


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def trust_policy(target: AwsTarget) -> dict:
    """Trust the principal's account *with* a PrincipalArn condition rather than the principal ARN
    itself: within one account, a trust policy naming a user ARN would let that user assume the
    role without any identity policy, making the grant policy (and its expiry) meaningless."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassPrincipalOnly",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_of(target.principal_arn)}:root"},
                "Action": list(ASSUME_ACTIONS),
                "Condition": {
                    "ArnEquals": {"aws:PrincipalArn": target.principal_arn},
                    "StringEquals": {"aws:RequestedRegion": target.region},
                    "Null": {"sts:SourceIdentity": "false"},
                },
            }
        ],
    }


def grant_policy_name(grant: Grant) -> str:
    return f"{GRANT_POLICY_PREFIX}{grant.request_id}"


def grant_policy(target: AwsTarget, grant: Grant) -> dict:
    """Allow assuming the role until expiry, and only with this request's SourceIdentity, so every
    session the grant can produce is one the per-request deny can kill."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassGrant",
                "Effect": "Allow",
                "Action": list(ASSUME_ACTIONS),
                "Resource": target.role_arn,
                "Condition": {
                    "DateLessThan": {"aws:CurrentTime": iso_utc(grant.expires_at)},
                    "StringEquals": {"sts:SourceIdentity": grant.request_id},
                },
            }
        ],
    }


def session_policy(grant: Grant) -> dict:
    """For grants under 15 minutes: the session may do what the role allows, until expiry."""
    return {
        "Version": VERSION,
        "Statement": [
            {"Sid": "BreakGlassWithinGrant", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "BreakGlassDenyAfterExpiry",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso_utc(grant.expires_at)}},
            },
        ],
    }


def revocation_not_after(target: AwsTarget, grant: Grant, now: datetime) -> datetime:
    """The last moment a session of this grant could still be valid: sessions are issued before
    min(now, expiry) and live at most the role's max session duration (at least AWS's 900 s)."""
    issued_by = min(now, grant.expires_at)
    longest = max(target.max_session_seconds, MIN_SESSION_SECONDS)
    return issued_by + timedelta(seconds=longest) + REVOCATION_MARGIN


def revocation_policy_name(request_id: str, not_after: datetime) -> str:
    """One role policy per request: PutRolePolicy of distinct names never loses a concurrent
    revocation, as a read-modify-write of one shared document would. The name carries the
    not-after time so pruning needs neither the database nor the documents."""
    return f"{REVOCATION_POLICY_PREFIX}{request_id}-until-{_name_time(not_after)}"


def revoke_older_sessions_policy_name(issued_before: datetime, not_after: datetime) -> str:
    return (
        f"{REVOCATION_POLICY_PREFIX}before-{_name_time(issued_before)}"
        f"-until-{_name_time(not_after)}"
    )


def revocation_policy(request_id: str) -> dict:
    """Deny everything to the sessions of one request, whatever their role session name."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassRevoked",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceIdentity": request_id}},
            }
        ],
    }


def revoke_older_sessions_policy(issued_before: datetime) -> dict:
    """The console's "revoke active sessions" statement: the fallback when per-request denies no
    longer fit in the role's inline policy size limit. It also cuts off other live grants."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassRevokedOlder",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": iso_utc(issued_before)}},
            }
        ],
    }


def parse_revocation_policy_name(name: str) -> tuple[str | None, datetime] | None:
    """(request id or None for a revoke-older-sessions policy, not-after), or None if not ours."""
    match = _REVOCATION_NAME.match(name)
    if match is None:
        return None
    until = datetime.strptime(match["until"], _NAME_TIME).replace(tzinfo=UTC)
    return match["request_id"], until


def older_sessions_moment(name: str) -> datetime | None:
    """An older-sessions deny's moment (sessions issued before it are cut), else None."""
    match = _REVOCATION_NAME.match(name)
    if match is None or match["before"] is None:
        return None
    return datetime.strptime(match["before"], _NAME_TIME).replace(tzinfo=UTC)


def revocation_request_id(name: str) -> str | None:
    parsed = parse_revocation_policy_name(name)
    return parsed[0] if parsed else None


def watch_name(role_name: str) -> str:
    """EventBridge rule and SQS queue name; rule names stop at 64 characters."""
    name = f"{WATCH_NAME_PREFIX}{role_name}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(role_name.encode()).hexdigest()[:8]
    return f"{WATCH_NAME_PREFIX}{role_name[:38]}-{digest}"


def watch_event_pattern(target: AwsTarget) -> dict:
    return {
        "source": ["aws.sts"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["sts.amazonaws.com"],
            "eventName": ["AssumeRole"],
            "requestParameters": {"roleArn": [target.role_arn]},
        },
    }


def activity_rule_name(role_name: str) -> str:
    """The EventBridge rule for every call of the role's sessions. Under the watch prefix, so
    whatever may read the watch rule may read this one; names stop at 64 characters."""
    name = f"{ACTIVITY_RULE_PREFIX}{role_name}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(role_name.encode()).hexdigest()[:8]
    return f"{ACTIVITY_RULE_PREFIX}{role_name[:32]}-{digest}"


def aws_sources() -> list[dict[str, str]]:
    """An event pattern's `source` filter: events AWS services emitted, none sent by PutEvents."""
    return [{"prefix": AWS_SOURCE_PREFIX}]


def activity_event_pattern(target: AwsTarget) -> dict:
    """Any CloudTrail-recorded call whose caller is a session of the break-glass role."""
    return {
        "source": aws_sources(),
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [target.role_arn]}}}
        },
    }


def watch_queue_policy(queue_arn: str, rule_arn: str, *more_rule_arns: str) -> dict:
    """Only these rules (the watch rule, then any other rule delivering to it) may send."""
    source: str | list[str] = [rule_arn, *more_rule_arns] if more_rule_arns else rule_arn
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "BreakGlassWatchRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": source}},
            }
        ],
    }


def _name_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_NAME_TIME)


# -- the protective boundary: what no session of a break-glass role may change ---------------

BOUNDARY_POLICY_PREFIX = "breakglass-boundary-"
# Every name the portal and its identities use starts with this: principals, broker and
# provisioner users, watch rules and queues, managed policies, groups.
MACHINERY_NAME_PREFIX = "breakglass-"

# Writes to IAM identities and policies (IAM's whole write surface by verb).
IAM_WRITE_ACTIONS = [
    "iam:Add*",
    "iam:Attach*",
    "iam:Change*",
    "iam:Create*",
    "iam:Deactivate*",
    "iam:Delete*",
    "iam:Detach*",
    "iam:Enable*",
    "iam:PassRole",
    "iam:Put*",
    "iam:Remove*",
    "iam:Reset*",
    "iam:Resync*",
    "iam:Set*",
    "iam:Tag*",
    "iam:Untag*",
    "iam:Update*",
    "iam:Upload*",
]
WATCH_WRITE_ACTIONS = [
    "events:DeleteRule",
    "events:DisableRule",
    "events:PutRule",
    "events:PutTargets",
    "events:RemoveTargets",
    "events:TagResource",
    "events:UntagResource",
    # The queue's messages are the watch: reading or deleting them is blinding it, sending one
    # is forging it (in one account, an identity policy allowing "*" suffices to send, whatever
    # the queue's policy says; SendMessageBatch is authorised as SendMessage).
    "sqs:AddPermission",
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:DeleteQueue",
    "sqs:PurgeQueue",
    "sqs:ReceiveMessage",
    "sqs:RemovePermission",
    "sqs:SendMessage",
    "sqs:SetQueueAttributes",
    "sqs:TagQueue",
    "sqs:UntagQueue",
]
TRAIL_WRITE_ACTIONS = [
    "cloudtrail:DeleteTrail",
    "cloudtrail:PutEventSelectors",
    "cloudtrail:PutInsightSelectors",
    "cloudtrail:RemoveTags",
    "cloudtrail:StopLogging",
    "cloudtrail:UpdateTrail",
]
# Role chaining: a session that assumes another role gets that role's credentials for up to an
# hour, and revoking this role's session (a deny on this role) does not reach them. Always
# denied: a profile cannot promise "access ends at revocation" and allow it.
ROLE_CHAINING_ACTIONS = ["sts:AssumeRole"]
# Ways to keep access after the session ends (MITRE ATT&CK T1098 Account Manipulation and
# T1136 Create Account on IAM): new identities, long-lived credentials, widened policies and
# trust, other federation doors. Anywhere in the account, not only on the machinery.
PERSISTENCE_ACTIONS = [
    "iam:AddUserToGroup",
    "iam:AttachGroupPolicy",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:CreateOpenIDConnectProvider",
    "iam:CreatePolicyVersion",
    "iam:CreateRole",
    "iam:CreateSAMLProvider",
    "iam:CreateServiceSpecificCredential",
    "iam:CreateUser",
    # Compute launched with another role (an EC2 instance profile, a Lambda function) acts as
    # that role after the session ends, with credentials no revocation of this role reaches.
    "iam:PassRole",
    "iam:PutGroupPolicy",
    "iam:PutRolePolicy",
    "iam:PutUserPolicy",
    "iam:ResetServiceSpecificCredential",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAccessKey",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateLoginProfile",
    "iam:UpdateSAMLProvider",
    "iam:UploadSSHPublicKey",
    "iam:UploadSigningCertificate",
    "sts:GetFederationToken",
]


def boundary_policy_name(role_name: str) -> str:
    return f"{BOUNDARY_POLICY_PREFIX}{role_name}"[:128]


def boundary_policy_arn(target: AwsTarget) -> str:
    return f"arn:aws:iam::{target.account_id}:policy/{boundary_policy_name(target.role_name)}"


def machinery_iam_arns(target: AwsTarget) -> list[str]:
    """The role, its principal and boundary, and every `breakglass-*` IAM name (the other
    principals, broker and provisioner identities, groups, policies)."""
    iam = f"arn:aws:iam::{target.account_id}"
    prefix = MACHINERY_NAME_PREFIX
    return sorted(
        {
            target.role_arn,
            target.principal_arn,
            boundary_policy_arn(target),
            *(f"{iam}:{kind}/{prefix}*" for kind in ("user", "role", "group", "policy")),
            *(f"{iam}:{kind}/*/{prefix}*" for kind in ("user", "role", "group", "policy")),
        }
    )


def protective_boundary(target: AwsTarget, *, protect_persistence: bool) -> dict:
    """The role's permissions boundary: everything the role's policies allow, except changing the
    break-glass machinery or chaining into another role (and, unless the profile turns it off,
    the persistence moves).

    A boundary rather than an inline deny: its Deny holds whatever the role's own policies say,
    it takes nothing from the role's inline-policy space the revocation denies need, and since
    it denies every write on the role (Put/DeleteRolePermissionsBoundary, DeleteRolePolicy …) and
    on its own managed policy (CreatePolicyVersion …), no session can lift it."""
    statements: list[dict] = [
        # A boundary caps what identity policies grant; this keeps the role's own policies whole.
        {"Sid": "BreakGlassWithinRolePolicies", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Sid": "BreakGlassProtectIdentities",
            "Effect": "Deny",
            "Action": list(IAM_WRITE_ACTIONS),
            "Resource": machinery_iam_arns(target),
        },
        {
            "Sid": "BreakGlassProtectWatch",
            "Effect": "Deny",
            "Action": list(WATCH_WRITE_ACTIONS),
            "Resource": [
                f"arn:aws:events:*:{target.account_id}:rule/{MACHINERY_NAME_PREFIX}*",
                f"arn:aws:sqs:*:{target.account_id}:{MACHINERY_NAME_PREFIX}*",
            ],
        },
        {
            # Every trail: which ones feed the watch is not the session's to decide.
            "Sid": "BreakGlassProtectTrails",
            "Effect": "Deny",
            "Action": list(TRAIL_WRITE_ACTIONS),
            "Resource": "*",
        },
        {
            "Sid": "BreakGlassNoRoleChaining",
            "Effect": "Deny",
            "Action": list(ROLE_CHAINING_ACTIONS),
            "Resource": "*",
        },
    ]
    if protect_persistence:
        statements.append(
            {
                "Sid": "BreakGlassNoPersistence",
                "Effect": "Deny",
                "Action": list(PERSISTENCE_ACTIONS),
                "Resource": "*",
            }
        )
    return {"Version": VERSION, "Statement": statements}
