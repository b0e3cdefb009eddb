import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import models
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from approvals import rules
from approvals.admin_scopes import AccessScopeAdmin  # noqa: F401  (registered there)
from approvals.errors import NotAllowed, NotFound, RequestInvalid, SignatureRefused
from approvals.models import (
    AccessProfile,
    AccessRequest,
    Approval,
    IntegrationKey,
    NotificationDelivery,
    ObservedUse,
    PersonalToken,
    PersonIdentity,
    PoisonMessage,
    ProfileChange,
    ProfileChangeStatus,
    SecurityAlarm,
    TimelineEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from approvals.services.api_access import integration_key_create, integration_key_revoke
from approvals.services.profile_changes import (
    profile_change_confirm,
    profile_change_propose,
    profile_change_withdraw,
)
from approvals.services.webhooks import webhook_endpoint_create, webhook_url_validate
from approvals.surfaces import event_source
from awsaccess import policies


@admin.register(AccessProfile)
class AccessProfileAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["slug", "name", "account_id", "region", "role_arn", "required_approvals"]
    search_fields = ["slug", "name", "account_id", "role_arn"]
    # The networks change only through `profile_networks_set` (checked, on the record, and
    # waiting requests told their signed content changed), so here they are shown, not edited.
    exclude = ["allowed_networks"]
    readonly_fields = ["allowed_networks_shown", "pending_changes", "protected_in_aws"]

    def save_model(self, request, obj: AccessProfile, form, change: bool) -> None:
        """A new approver group or fewer required approvals is proposed, not saved: a second
        administrator confirms it (the other fields are saved now)."""
        if change:
            current = AccessProfile.objects.get(pk=obj.pk)
            if rules.profile_change_needs_second_admin(
                old_group_id=current.approver_group_id,
                new_group_id=obj.approver_group_id,
                old_required=current.required_approvals,
                new_required=obj.required_approvals,
            ):
                proposal = profile_change_propose(
                    profile=current,
                    approver_group=obj.approver_group,
                    required_approvals=obj.required_approvals,
                    proposer=request.user,
                    source=event_source(request),
                )
                obj.approver_group_id = current.approver_group_id
                obj.required_approvals = current.required_approvals
                messages.warning(
                    request,
                    f"The change of approver group / required approvals is pending (change "
                    f"#{proposal.pk}): it takes effect when another administrator confirms it "
                    "with a TOTP code under Profile changes.",
                )
        super().save_model(request, obj, form, change)

    @admin.display(description="Allowed networks")
    def allowed_networks_shown(self, obj: AccessProfile) -> str:
        where = ", ".join(obj.allowed_networks) if obj.pk else ""
        return format_html(
            '{}<p class="help">Change them with <code>manage.py profile_networks {} '
            "(CIDR … | --any)</code>: it checks them against the profile's scopes and puts the "
            "change on the record.</p>",
            where or "anywhere",
            obj.slug or "PROFILE",
        )

    @admin.display(description="Pending changes (a second administrator must confirm)")
    def pending_changes(self, obj: AccessProfile) -> str:
        if obj.pk is None:
            return "-"
        pending = obj.changes.filter(status=ProfileChangeStatus.PENDING)
        return (
            format_html_join(
                "",
                '<p><a href="{}">change #{}</a> by {}: {}</p>',
                (
                    (
                        reverse("admin:approvals_profilechange_confirm", args=[change.pk]),
                        change.pk,
                        change.proposed_by_name,
                        json.dumps(change.summary()),
                    )
                    for change in pending
                ),
            )
            or "none"
        )

    @admin.display(description="Protected in AWS (the role's permissions boundary)")
    def protected_in_aws(self, obj: AccessProfile) -> str:
        """What no session of the role may do, as provisioning writes it (issue 12)."""
        if obj.pk is None:
            return "Shown once the profile is saved."
        document = policies.protective_boundary(
            obj.aws_target(), protect_persistence=obj.deny_persistence
        )
        denies = [s for s in document["Statement"] if s["Effect"] == "Deny"]
        return format_html(
            "<p>Boundary policy {}</p><pre>{}</pre>",
            policies.boundary_policy_arn(obj.aws_target()),
            json.dumps(denies, indent=2),
        )


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


@admin.register(SecurityAlarm)
class SecurityAlarmAdmin(ReadOnlyAdmin):
    """Acknowledging needs a TOTP code and a note, so it happens in the portal, not here."""

    list_display = ["opened_at", "kind", "title", "profile", "status", "acknowledged_by_name"]
    list_filter = ["status", "kind", "profile"]
    search_fields = ["title", "dedup_key"]


@admin.register(ObservedUse)
class ObservedUseAdmin(ReadOnlyAdmin):
    list_display = ["event_time", "profile", "request", "principal_arn", "source_ip", "explained"]
    list_filter = ["explained", "profile"]
    search_fields = ["event_id", "source_ip", "session_name", "source_identity"]


@admin.register(PoisonMessage)
class PoisonMessageAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "message_id", "queue_url", "error"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "channel", "target", "event", "status", "attempts", "last_error"]
    list_filter = ["channel", "status", "event"]


def _saved_as(obj, created) -> None:
    """Make the admin's unsaved form object the row a service created, so the admin's own
    logging and redirect see it."""
    for field in created._meta.concrete_fields:
        setattr(obj, field.attname, getattr(created, field.attname))
    obj._state.adding = False
    obj._state.db = created._state.db


@admin.register(IntegrationKey)
class IntegrationKeyAdmin(admin.ModelAdmin):
    """Keys are shown once, on creation, in a message; only their SHA-256 is stored."""

    list_display = ["name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke_keys"]

    def get_fields(self, request, obj=None) -> tuple[str, ...]:
        if obj is None:
            return ("name", "expires_at")
        return ("name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [] if obj is None else list(self.get_fields(request, obj))

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # requests name the integration that opened them; revoke instead

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        created, key = integration_key_create(
            name=obj.name, expires_at=obj.expires_at, actor=request.user
        )
        _saved_as(obj, created)
        messages.warning(
            request,
            f"Integration key for {created.name} (copy it now; it is never shown again): {key}",
        )

    @admin.action(description="Revoke the selected keys")
    def revoke_keys(self, request, queryset) -> None:
        for key in queryset:
            integration_key_revoke(integration_key_id=key.pk, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


class WebhookEndpointForm(forms.ModelForm):
    """The admin checks a URL with the same function as every other path that sets one."""

    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["integration", "url", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_url_validate(url)
        except RequestInvalid as error:
            raise forms.ValidationError(error.fields["url"]) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """The signing secret is shown once, on creation; it is stored sealed."""

    form = WebhookEndpointForm

    list_display = ["url", "integration", "active", "created_at"]
    list_filter = ["active"]

    def get_fields(self, request, obj=None) -> tuple[str, ...]:
        return ("integration", "url", "active") + (() if obj is None else ("created_at",))

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [] if obj is None else ["integration", "created_at"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.save(update_fields=["url", "active"])
            return
        created, secret = webhook_endpoint_create(
            url=obj.url, integration=obj.integration, actor=request.user
        )
        if not obj.active:
            WebhookEndpoint.objects.filter(pk=created.pk).update(active=False)
            created.active = False
        _saved_as(obj, created)
        messages.warning(
            request,
            f"Signing secret for {created.url} (copy it now; it is never shown again): {secret}",
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "event",
        "endpoint",
        "attempts",
        "last_status",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["event", "endpoint"]
    search_fields = ["delivery_id", "event"]
    fields = (
        "delivery_id",
        "endpoint",
        "event",
        "created_at",
        "delivered_at",
        "attempts",
        "last_status",
        "last_error",
        "attempt_log_pretty",
        "payload_pretty",
    )
    readonly_fields = fields

    @admin.display(description="Attempts")
    def attempt_log_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.attempt_log, indent=2))

    @admin.display(description="Payload")
    def payload_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))


class PersonIdentityInline(admin.StackedInline):
    """The person behind the account: two accounts of one person never count as two approvers."""

    model = PersonIdentity
    can_delete = True
    max_num = 1
    extra = 1


admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Accounts carry their person identifier. They are deactivated, never deleted: the record
    names them, and the portal's database role may not rewrite the record's actor column."""

    inlines = [PersonIdentityInline]
    list_display = ("username", "email", "is_staff", "is_active", "person_identity")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ProfileChangeConfirmForm(forms.Form):
    otp_code = forms.CharField(
        label="Your TOTP code", max_length=8, widget=forms.TextInput({"autocomplete": "off"})
    )


@admin.register(ProfileChange)
class ProfileChangeAdmin(ReadOnlyAdmin):
    """Pending changes of who approves a profile; another administrator confirms them here."""

    list_display = ["pk", "profile", "status", "what", "proposed_by_name", "proposed_at", "confirm"]
    list_filter = ["status", "profile"]
    actions = ["withdraw"]

    @admin.display(description="Change")
    def what(self, obj: ProfileChange) -> str:
        return "; ".join(
            f"{field}: {values['before']} → {values['after']}"
            for field, values in obj.summary().items()
        )

    @admin.display(description="Confirm")
    def confirm(self, obj: ProfileChange) -> str:
        if obj.status != ProfileChangeStatus.PENDING or obj.is_expired():
            return "-"
        url = reverse("admin:approvals_profilechange_confirm", args=[obj.pk])
        return format_html('<a href="{}">confirm with TOTP</a>', url)

    def get_urls(self):
        confirm = path(
            "<int:change_id>/confirm/",
            self.admin_site.admin_view(self.confirm_view),
            name="approvals_profilechange_confirm",
        )
        return [confirm, *super().get_urls()]

    def confirm_view(self, request, change_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        change = get_object_or_404(ProfileChange.objects.select_related("profile"), pk=change_id)
        form = ProfileChangeConfirmForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                profile_change_confirm(
                    change_id=change.pk,
                    confirmer=request.user,
                    otp_code=form.cleaned_data["otp_code"],
                    source=event_source(request),
                )
            except (SignatureRefused, NotAllowed, NotFound) as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Change #{change.pk} confirmed and applied.")
                return redirect("admin:approvals_profilechange_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Confirm change #{change.pk} of profile {change.profile.slug}",
            "change": change,
            "what": self.what(change),
            "form": form,
        }
        return TemplateResponse(request, "admin/approvals/profilechange/confirm.html", context)

    @admin.action(description="Withdraw the selected pending changes")
    def withdraw(self, request, queryset) -> None:
        for change in queryset.filter(status=ProfileChangeStatus.PENDING):
            profile_change_withdraw(
                change_id=change.pk, user=request.user, source=event_source(request)
            )
        messages.success(request, "Withdrawn.")
