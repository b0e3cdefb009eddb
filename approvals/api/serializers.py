"""Shapes in and out of the API. Validation of meaning stays in the services."""

from rest_framework import serializers

from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    MAX_PROFILE_DURATION_MINUTES,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    AccessProfile,
    AccessRequest,
    AlarmStatus,
    Approval,
    SecurityAlarm,
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


class ProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccessProfile
        fields = [
            "slug",
            "name",
            "account_id",
            "region",
            "max_duration_minutes",
            "required_approvals",
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


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver_name")

    class Meta:
        model = Approval
        fields = ["approver", "decision", "reason", "created_at"]


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
        ]
        read_only_fields = fields


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
