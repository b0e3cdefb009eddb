from django.contrib import admin

from approvals.models import AccessProfile, AccessRequest, Approval, PersonalToken, TimelineEvent


@admin.register(AccessProfile)
class AccessProfileAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "account_id", "region", "role_arn", "required_approvals"]
    search_fields = ["slug", "name", "account_id", "role_arn"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """The record is written by the services only; the admin may look, never touch."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    list_display = ["ticket", "profile", "requester_name", "status", "created_at", "expires_at"]
    list_filter = ["status", "profile"]
    search_fields = ["ticket", "requester_name", "id"]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["request", "approver_name", "decision", "created_at"]


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnlyAdmin):
    list_display = ["chain", "sequence", "created_at", "actor_name", "code", "outcome"]
    list_filter = ["code", "outcome"]
    search_fields = ["chain", "actor_name", "code"]


@admin.register(PersonalToken)
class PersonalTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are shown once, so they are created where they can be shown
