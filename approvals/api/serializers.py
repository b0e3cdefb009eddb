"""Shapes in and out of the API. Validation of meaning stays in the services."""

from rest_framework import serializers

from approvals import selectors
from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    MAX_PROFILE_DURATION_MINUTES,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    AccessProfile,
    AccessRequest,
    AccessScope,
    AlarmStatus,
    Approval,
    ExtensionStatus,
    SecurityAlarm,
    SessionActivity,
    Status,
    TimelineEvent,
)
from approvals.services.alarms import ALARM_NOTE_MAX_LENGTH


def otp_field() -> serializers.CharField:
    return serializers.CharField(max_length=16, help_text="The caller's current TOTP code.")


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for machines (e.g. self_approval).")
    message = serializers.CharField(help_text="Names the problem, for people.")
    fields = serializers.DictField(  # type: ignore[assignment]  # the error shape's key shadows Serializer.fields; this serializer only documents it
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per-field messages, when the body was not valid.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class CallerSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["person", "integration"])
    name = serializers.CharField()


class ScopeSerializer(serializers.ModelSerializer):
    default = serializers.BooleanField(source="is_default")
    policy = serializers.JSONField(source="policy_document", allow_null=True)
    managed_policy_arns = serializers.ListField(child=serializers.CharField())
    networks = serializers.ListField(
        source="allowed_networks",
        child=serializers.CharField(),
        help_text="CIDRs within the profile's own; empty: the profile's.",
    )

    class Meta:
        model = AccessScope
        fields = ["name", "description", "default", "policy", "managed_policy_arns", "networks"]


class ProfileSerializer(serializers.ModelSerializer):
    scopes = ScopeSerializer(many=True, read_only=True)
    networks = serializers.ListField(
        source="allowed_networks",
        child=serializers.CharField(),
        help_text="CIDRs its sessions may call AWS from; empty: anywhere.",
    )

    class Meta:
        model = AccessProfile
        fields = [
            "slug",
            "name",
            "account_id",
            "region",
            "max_duration_minutes",
            "required_approvals",
            "scopes",
            "networks",
        ]


class RequestOpenSerializer(serializers.Serializer):
    profile = serializers.SlugField(max_length=50, help_text="Slug of the access profile.")
    ticket = serializers.CharField(max_length=TICKET_MAX_LENGTH, help_text="e.g. INC-1234")
    justification = serializers.CharField(max_length=JUSTIFICATION_MAX_LENGTH)
    duration_minutes = serializers.IntegerField(min_value=1, max_value=MAX_PROFILE_DURATION_MINUTES)
    requester = serializers.CharField(
        max_length=150,
        required=False,
        help_text="Username of the person who needs access (integration keys only, required).",
    )
    scope = serializers.CharField(
        max_length=50,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="One of the profile's scopes; omitted: the profile's default scope.",
    )


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver_name")

    class Meta:
        model = Approval
        fields = ["approver", "decision", "reason", "created_at"]


class ExtensionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ExtensionStatus.choices)
    minutes = serializers.IntegerField()
    reason = serializers.CharField()
    requester = serializers.CharField(source="requester_name")
    created_at = serializers.DateTimeField()
    approval_deadline = serializers.DateTimeField()
    from_expires_at = serializers.DateTimeField()
    to_expires_at = serializers.DateTimeField()
    applied_at = serializers.DateTimeField(allow_null=True)
    failure_reason = serializers.CharField(allow_blank=True)
    approvals = ApprovalSerializer(many=True, read_only=True)


class ExtensionAskSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=MAX_PROFILE_DURATION_MINUTES)
    reason = serializers.CharField(max_length=REASON_MAX_LENGTH)


class RequestSerializer(serializers.ModelSerializer):
    profile: "serializers.SlugRelatedField[AccessProfile]" = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    requester = serializers.CharField(source="requester_name")
    status = serializers.ChoiceField(choices=Status.choices)
    approvals = ApprovalSerializer(many=True, read_only=True)
    required_approvals = serializers.IntegerField(source="profile.required_approvals")
    time_to_access_ms = serializers.IntegerField(allow_null=True)
    time_to_revoke_ms = serializers.IntegerField(allow_null=True)
    scope = serializers.CharField(source="scope.name", allow_null=True, default=None)
    scope_content = serializers.SerializerMethodField(
        help_text="What the sessions may do and from where, as signed: name, policy, "
        "managed_policy_arns, profile_networks, scope_networks (null: the whole role, anywhere)."
    )
    extensions = ExtensionSerializer(many=True, read_only=True)

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "status",
            "profile",
            "ticket",
            "justification",
            "duration_minutes",
            "requester",
            "opened_by",
            "required_approvals",
            "approvals",
            "created_at",
            "approval_deadline",
            "approved_at",
            "activated_at",
            "expires_at",
            "revoke_requested_at",
            "revoked_at",
            "failure_reason",
            "time_to_access_ms",
            "time_to_revoke_ms",
            "scope",
            "scope_content",
            "extensions",
        ]
        read_only_fields = fields

    def get_scope_content(self, access_request: AccessRequest) -> dict | None:
        return access_request.scope_content()


class RequestFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    profile = serializers.SlugField(max_length=50, required=False)
    requester = serializers.CharField(max_length=150, required=False)
    ticket = serializers.CharField(max_length=TICKET_MAX_LENGTH, required=False)


class OtpSerializer(serializers.Serializer):
    otp = otp_field()


class OtpReasonSerializer(OtpSerializer):
    reason = serializers.CharField(max_length=REASON_MAX_LENGTH)


class CredentialsSerializer(serializers.Serializer):
    access_key_id = serializers.CharField()
    secret_access_key = serializers.CharField()
    session_token = serializers.CharField()
    expiration = serializers.DateTimeField()
    region = serializers.CharField()
    endpoint_url = serializers.URLField(
        required=False, help_text="Only when the profile lives in the local AWS sandbox."
    )

    def to_representation(self, instance) -> dict:
        data = super().to_representation(instance)
        if not data.get("endpoint_url"):
            data.pop("endpoint_url", None)
        return data


class TimelineEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")
    created_at = serializers.SerializerMethodField(
        help_text="Exactly the text the hash covers (ISO 8601, microseconds, +00:00)."
    )
    detail = serializers.DictField()
    source_ip = serializers.IPAddressField(allow_null=True)

    class Meta:
        model = TimelineEvent
        fields = [
            "sequence",
            "created_at",
            "actor",
            "code",
            "outcome",
            "detail",
            "source_ip",
            "user_agent",
            "prev_hash",
            "hash",
        ]

    def get_created_at(self, event: TimelineEvent) -> str:
        return event.created_at.isoformat(timespec="microseconds")


class TimelineSerializer(serializers.Serializer):
    request = serializers.UUIDField()
    chain = serializers.CharField(help_text="request:<id>; the first input of every hash.")
    head_sequence = serializers.IntegerField(help_text="The chain's last sequence number.")
    head_hash = serializers.CharField(help_text="The chain's last hash.")
    events = TimelineEventSerializer(many=True)


class AlarmSerializer(serializers.ModelSerializer):
    profile: "serializers.SlugRelatedField[AccessProfile]" = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    status = serializers.ChoiceField(choices=AlarmStatus.choices)
    detail = serializers.DictField()

    class Meta:
        model = SecurityAlarm
        fields = [
            "id",
            "kind",
            "title",
            "detail",
            "profile",
            "request",
            "status",
            "opened_at",
            "acknowledged_by_name",
            "acknowledged_at",
            "note",
        ]
        read_only_fields = fields


class AlarmFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=AlarmStatus.choices, required=False)


class AlarmAcknowledgeSerializer(OtpSerializer):
    note = serializers.CharField(max_length=ALARM_NOTE_MAX_LENGTH)


class HealthComponentSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    age_seconds = serializers.FloatField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "failing"])
    reasons = serializers.ListField(child=serializers.CharField())
    components = HealthComponentSerializer(many=True)


class ActivitySerializer(serializers.ModelSerializer):
    outcome = serializers.SerializerMethodField(
        help_text="allowed; denied (AWS refused the session's permissions, e.g. after "
        "revocation); failed (another AWS error, see error_code)."
    )
    mutating = serializers.BooleanField(
        read_only=True, help_text="Not read-only (an unknown read-only flag counts as mutating)."
    )
    resources = serializers.JSONField(
        read_only=True, help_text="CloudTrail's resources list (may be empty)."
    )
    request_parameters = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="CloudTrail's requestParameters, scrubbed of secrets, bounded.",
    )
    sealed_by = serializers.IntegerField(
        source="seal.sequence",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="Sequence of the timeline event whose hash covers this call (null: not yet).",
    )

    class Meta:
        model = SessionActivity
        fields = [
            "event_id",
            "event_time",
            "service",
            "action",
            "region",
            "source_ip",
            "user_agent",
            "resources",
            "request_parameters",
            "outcome",
            "error_code",
            "error_message",
            "read_only",
            "mutating",
            "session_arn",
            "access_key_id",
            "source_identity",
            "unexplained",
            "source",
            "received_at",
            "sealed_by",
        ]
        read_only_fields = fields

    def get_outcome(self, call: SessionActivity) -> str:
        return selectors.call_outcome(call)


def _true_or_false(name: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=["true", "false"],
        required=False,
        help_text=f"true: only {name} calls; false: only the others.",
        error_messages={"invalid_choice": '"{input}" is not valid: use true or false.'},
    )


class ActivityFilterSerializer(serializers.Serializer):
    mutating = _true_or_false("mutating (not read-only)")
    errors = _true_or_false("refused or failed (an AWS error code)")  # type: ignore[assignment]  # the filter's public name; the metaclass pops declared fields, so Serializer.errors stays intact

    # A misspelt filter would otherwise return every call, as if nothing matched it.
    _PAGING = frozenset({"cursor", "page_size", "format"})

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields) - self._PAGING)
        if unknown:
            raise serializers.ValidationError(
                f"unknown parameter(s): {', '.join(unknown)}; filter with mutating or errors"
            )
        return {name: value == "true" for name, value in attrs.items()}
