"""Create or check what one access profile needs in AWS: the role's trust policy, and the
EventBridge rule + SQS queue that watch AssumeRole of the role.

Run it with a more privileged identity than the broker. It creates what is missing and reports
drift in what exists; it never silently rewrites something that differs (that difference may be an
attack in progress, or a decision someone should explain) unless asked with `fix_drift`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Literal

from botocore.exceptions import ClientError

from awsaccess import offline_kit, policies, watch_routes
from awsaccess.clients import ClientFactory
from awsaccess.engine import IAM_REGION, principal_kind_and_name
from awsaccess.errors import aws_call, error_code, translate
from awsaccess.policies import normalize
from awsaccess.types import AwsConnection, AwsTarget

logger = logging.getLogger(__name__)

Status = Literal["ok", "created", "drift", "missing", "fixed"]


@dataclass(frozen=True)
class Finding:
    resource: str  # e.g. "role trust policy"
    status: Status
    detail: str = ""


@dataclass
class ProvisionReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def has_drift(self) -> bool:
        """True when something differs from what it should be or is missing."""
        return any(finding.status in ("drift", "missing") for finding in self.findings)

    def add(self, resource: str, status: Status, detail: str = "") -> None:
        self.findings.append(Finding(resource, status, detail))


def profile_provision(
    connection: AwsConnection,
    target: AwsTarget,
    *,
    check_only: bool,
    fix_drift: bool = False,
) -> ProvisionReport:
    """Idempotent. With `check_only` nothing is changed (missing things are reported)."""
    provisioner = _Provisioner(ClientFactory(connection), target, check_only, fix_drift)
    provisioner.run()
    return provisioner.report


class _Provisioner:
    def __init__(
        self, clients: ClientFactory, target: AwsTarget, check_only: bool, fix_drift: bool
    ) -> None:
        self.iam = clients.client("iam", IAM_REGION)
        self.sqs = clients.client("sqs", target.region)
        self.events = clients.client("events", target.region)
        self.forward_events = clients.client("events", watch_routes.FORWARDER_REGION)
        self.target = target
        self.check_only = check_only
        self.fix = fix_drift and not check_only
        self.report = ProvisionReport()
        self.name = policies.watch_name(target.role_name)

    def run(self) -> None:
        self._principal()
        self._role()
        self._offline_principals()
        self._boundary()
        queue_url, queue_arn = self._queue()
        rule_arn = self._rule()
        activity_rule_arn = self._activity_rule(queue_arn)
        changes_rule_arn = self._changes_rule(queue_arn)
        self._queue_policy(queue_url, queue_arn, rule_arn, activity_rule_arn, changes_rule_arn)
        self._rule_target(queue_arn)
        if watch_routes.forwarding_needed(self.target):
            self._forwarder()

    # -- the role's protective boundary (issue 12) -----------------------------------------

    def _boundary(self) -> None:
        """The managed policy holding the protective boundary, set as the role's permissions
        boundary. Created when absent; a different document or boundary is drift."""
        arn = policies.boundary_policy_arn(self.target)
        expected = policies.protective_boundary(
            self.target, protect_persistence=self.target.protect_persistence
        )
        live = self._boundary_document(arn)
        if live is None:
            if self.check_only:
                self.report.add("role boundary policy", "missing", arn)
                return
            with aws_call("iam:CreatePolicy"):
                self.iam.create_policy(
                    PolicyName=policies.boundary_policy_name(self.target.role_name),
                    PolicyDocument=policies.to_json(expected),
                    Description="Break-glass: what no session of the role may change",
                )
            self.report.add("role boundary policy", "created", arn)
        elif policies.same_document(live, expected):
            self.report.add("role boundary policy", "ok", arn)
        elif self.fix:
            self._boundary_version_replace(arn, expected)
            self.report.add("role boundary policy", "fixed", arn)
        else:
            self.report.add("role boundary policy", "drift", "differs from the protective boundary")
        self._boundary_on_role(arn)

    def _boundary_document(self, arn: str) -> object | None:
        try:
            policy = self.iam.get_policy(PolicyArn=arn)["Policy"]
            version = self.iam.get_policy_version(
                PolicyArn=arn, VersionId=policy.get("DefaultVersionId", "v1")
            )
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return None
            raise translate("iam:GetPolicyVersion", error) from None
        return version["PolicyVersion"].get("Document")

    def _boundary_version_replace(self, arn: str, expected: dict) -> None:
        with aws_call("iam:ListPolicyVersions"):
            versions = self.iam.list_policy_versions(PolicyArn=arn)["Versions"]
        for version in versions:  # AWS keeps five versions; ours is the only one that counts
            if not version.get("IsDefaultVersion"):
                with aws_call("iam:DeletePolicyVersion"):
                    self.iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
        with aws_call("iam:CreatePolicyVersion"):
            self.iam.create_policy_version(
                PolicyArn=arn, PolicyDocument=policies.to_json(expected), SetAsDefault=True
            )

    def _boundary_on_role(self, arn: str) -> None:
        try:
            role = self.iam.get_role(RoleName=self.target.role_name)["Role"]
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return  # reported as a missing role already
            raise translate("iam:GetRole", error) from None
        live = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
        if live == arn:
            self.report.add("role permissions boundary", "ok", arn)
            return
        if self.check_only or (live is not None and not self.fix):
            status: Status = "missing" if live is None else "drift"
            self.report.add("role permissions boundary", status, f"is {live}, should be {arn}")
            return
        with aws_call("iam:PutRolePermissionsBoundary"):
            self.iam.put_role_permissions_boundary(
                RoleName=self.target.role_name, PermissionsBoundary=arn
            )
        self.report.add("role permissions boundary", "fixed" if live else "created", arn)

    # -- principal: checked, never created (its keys are a secret the organisation holds) ---

    def _principal(self) -> None:
        kind, name = principal_kind_and_name(self.target.principal_arn)
        try:
            if kind == "user":
                arn = self.iam.get_user(UserName=name)["User"]["Arn"]
                inline = self.iam.list_user_policies(UserName=name)["PolicyNames"]
                attached = self.iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
                groups = self.iam.list_groups_for_user(UserName=name)["Groups"]
            else:
                arn = self.iam.get_role(RoleName=name)["Role"]["Arn"]
                inline = self.iam.list_role_policies(RoleName=name)["PolicyNames"]
                attached = self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
                groups = []
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                self.report.add("principal", "missing", self.target.principal_arn)
                return
            raise translate(f"iam:Get{kind.capitalize()}", error) from None
        if arn != self.target.principal_arn:
            self.report.add("principal", "drift", f"ARN is {arn}")
            return
        # Any permission besides our grants would let the principal act without an approval.
        extra = [n for n in inline if not n.startswith(policies.GRANT_POLICY_PREFIX)]
        extra += [p["PolicyName"] for p in attached] + [f"group {g['GroupName']}" for g in groups]
        if extra:
            self.report.add("principal permissions", "drift", "holds " + ", ".join(sorted(extra)))
        else:
            self.report.add("principal permissions", "ok", "only break-glass grants")

    def _offline_principals(self) -> None:
        """The offline kits' users (issue 18): checked only, the kit commands write them."""
        for finding in offline_kit.offline_principal_findings(self.iam, self.target):
            self.report.add(*finding)

    # -- role ------------------------------------------------------------------------------

    def _role(self) -> None:
        expected = offline_kit.role_trust_policy(self.target)
        try:
            role = self.iam.get_role(RoleName=self.target.role_name)["Role"]
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise translate("iam:GetRole", error) from None
            if self.check_only:
                self.report.add("role", "missing", self.target.role_arn)
                return
            path = self.target.role_arn.split(":role", 1)[1].rsplit("/", 1)[0] + "/"
            with aws_call("iam:CreateRole"):
                self.iam.create_role(
                    RoleName=self.target.role_name,
                    Path=path,
                    AssumeRolePolicyDocument=policies.to_json(expected),
                    MaxSessionDuration=self.target.max_session_seconds,
                    Description="Break-glass role: assumed only through an approved request",
                )
            self.report.add("role", "created", self.target.role_arn)
            return
        if role["Arn"] != self.target.role_arn:
            self.report.add("role", "drift", f"ARN is {role['Arn']}")
        else:
            self.report.add("role", "ok", self.target.role_arn)
        if normalize(role["AssumeRolePolicyDocument"]) == normalize(expected):
            self.report.add("role trust policy", "ok")
        elif self.fix:
            with aws_call("iam:UpdateAssumeRolePolicy"):
                self.iam.update_assume_role_policy(
                    RoleName=self.target.role_name, PolicyDocument=policies.to_json(expected)
                )
            self.report.add("role trust policy", "fixed", "reset to the expected trust policy")
        else:
            self.report.add("role trust policy", "drift", "differs from the expected trust policy")
        actual_max = int(role.get("MaxSessionDuration", 3600))
        if actual_max == self.target.max_session_seconds:
            self.report.add("role max session duration", "ok", str(actual_max))
        elif self.fix:
            with aws_call("iam:UpdateRole"):
                self.iam.update_role(
                    RoleName=self.target.role_name,
                    MaxSessionDuration=self.target.max_session_seconds,
                )
            self.report.add(
                "role max session duration", "fixed", str(self.target.max_session_seconds)
            )
        else:
            self.report.add(
                "role max session duration",
                "drift",
                f"{actual_max} s, profile says {self.target.max_session_seconds} s",
            )

    # -- watch queue and rule --------------------------------------------------------------

    def _queue(self) -> tuple[str | None, str]:
        queue_arn = f"arn:aws:sqs:{self.target.region}:{self.target.account_id}:{self.name}"
        try:
            url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        except ClientError as error:
            if error_code(error) not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                raise translate("sqs:GetQueueUrl", error) from None
            if self.check_only:
                self.report.add("watch queue", "missing", self.name)
                return None, queue_arn
            with aws_call("sqs:CreateQueue"):
                url = self.sqs.create_queue(
                    QueueName=self.name,
                    Attributes={
                        "MessageRetentionPeriod": "1209600",
                        "SqsManagedSseEnabled": "true",
                    },
                )["QueueUrl"]
            self.report.add("watch queue", "created", self.name)
        else:
            self.report.add("watch queue", "ok", self.name)
        with aws_call("sqs:GetQueueAttributes"):
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, attributes["Attributes"]["QueueArn"]

    def _rule(self) -> str:
        pattern = policies.watch_event_pattern(self.target)
        try:
            rule = self.events.describe_rule(Name=self.name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise translate("events:DescribeRule", error) from None
            rule_arn = (
                f"arn:aws:events:{self.target.region}:{self.target.account_id}:rule/{self.name}"
            )
            if self.check_only:
                self.report.add("watch rule", "missing", self.name)
                return rule_arn
            self._put_rule(pattern)
            self.report.add("watch rule", "created", self.name)
            return rule_arn
        problems = []
        if normalize(rule.get("EventPattern", "{}")) != normalize(pattern):
            problems.append("event pattern differs")
        if rule.get("State") != "ENABLED":
            problems.append(f"state is {rule.get('State')}")
        if not problems:
            self.report.add("watch rule", "ok", self.name)
        elif self.fix:
            self._put_rule(pattern)
            self.report.add("watch rule", "fixed", "; ".join(problems))
        else:
            self.report.add("watch rule", "drift", "; ".join(problems))
        return str(rule["Arn"])

    def _put_rule(self, pattern: dict) -> None:
        with aws_call("events:PutRule"):
            self.events.put_rule(
                Name=self.name,
                EventPattern=json.dumps(pattern),
                State="ENABLED",
                Description=f"AssumeRole of {self.target.role_arn}",
            )

    def _queue_policy(
        self, url: str | None, queue_arn: str, rule_arn: str, *more_rule_arns: str
    ) -> None:
        if url is None:
            return
        expected = policies.watch_queue_policy(queue_arn, rule_arn, *more_rule_arns)
        with aws_call("sqs:GetQueueAttributes"):
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
        actual = attributes.get("Attributes", {}).get("Policy")
        if actual is not None and normalize(actual) == normalize(expected):
            self.report.add("watch queue policy", "ok")
            return
        if self.check_only or (actual is not None and not self.fix):
            status: Status = "missing" if actual is None else "drift"
            self.report.add("watch queue policy", status, "only the watch rule may send")
            return
        with aws_call("sqs:SetQueueAttributes"):
            self.sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": policies.to_json(expected)}
            )
        self.report.add("watch queue policy", "created" if actual is None else "fixed")

    def _rule_target(self, queue_arn: str, *, rule: str = "", label: str = "watch rule") -> None:
        """The rule's one target is the watch queue, with no other field: reported, created,
        or fixed when asked."""
        watch_routes.targets_ensure(
            self.events,
            self.report.add,
            rule=rule or self.name,
            expected=watch_routes.changes_target(queue_arn),
            label=label,
            check_only=self.check_only,
            fix=self.fix,
        )

    # -- tampering: changes to the machinery, to the same queue (issue 12) ---------------------

    def _changes_rule(self, queue_arn: str) -> str:
        """The rule for every write to the profile's machinery → its ARN."""
        name = watch_routes.changes_rule_name(self.target.role_name)
        exists = watch_routes.rule_ensure(
            self.events,
            self.report.add,
            name=name,
            pattern=watch_routes.changes_event_pattern(self.target),
            description=f"Changes to the break-glass machinery of {self.target.role_arn}",
            label="changes rule",
            check_only=self.check_only,
            fix=self.fix,
        )
        if exists:
            self._rule_target(queue_arn, rule=name, label="changes rule")
        return f"arn:aws:events:{self.target.region}:{self.target.account_id}:rule/{name}"

    def _forwarder(self) -> None:
        """IAM's us-east-1 events (machinery changes, the sessions' IAM calls) to the profile's
        region, through the forwarder role."""
        add = self.report.add
        watch_routes.forwarder_role_ensure(
            self.iam, add, self.target, check_only=self.check_only, fix=self.fix
        )
        name = watch_routes.forwarder_rule_name(self.target.role_name)
        exists = watch_routes.rule_ensure(
            self.forward_events,
            add,
            name=name,
            pattern=watch_routes.forwarder_event_pattern(self.target),
            description=f"IAM events of {self.target.role_arn} to {self.target.region}",
            label="forwarder rule",
            check_only=self.check_only,
            fix=self.fix,
        )
        if exists:
            watch_routes.targets_ensure(
                self.forward_events,
                add,
                rule=name,
                expected=watch_routes.forwarder_target(self.target),
                label="forwarder rule",
                check_only=self.check_only,
                fix=self.fix,
            )

    # -- activity: every call of the role's sessions, to the same watch queue ------------------

    def _activity_rule(self, queue_arn: str) -> str:
        """The rule (and its queue target) for every CloudTrail call by a session of the role →
        its ARN. Checked like the watch rule: drift is reported, fixed only when asked."""
        name = policies.activity_rule_name(self.target.role_name)
        pattern = policies.activity_event_pattern(self.target)
        rule_arn = f"arn:aws:events:{self.target.region}:{self.target.account_id}:rule/{name}"
        try:
            rule = self.events.describe_rule(Name=name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise translate("events:DescribeRule", error) from None
            rule = None
        problems = []
        if rule is not None and normalize(rule.get("EventPattern", "{}")) != normalize(pattern):
            problems.append("event pattern differs")
        if rule is not None and rule.get("State") != "ENABLED":
            problems.append(f"state is {rule.get('State')}")
        if rule is None and self.check_only:
            self.report.add("activity rule", "missing", name)
            return rule_arn
        if rule is None or (problems and self.fix):
            with aws_call("events:PutRule"):
                self.events.put_rule(
                    Name=name,
                    EventPattern=json.dumps(pattern),
                    State="ENABLED",
                    Description=f"Every call by a session of {self.target.role_arn}",
                )
        status: Status = "created" if rule is None else "fixed" if problems and self.fix else "ok"
        if problems and not self.fix:
            status = "drift"
        self.report.add("activity rule", status, "; ".join(problems) or name)
        self._rule_target(queue_arn, rule=name, label="activity rule")
        return rule_arn
