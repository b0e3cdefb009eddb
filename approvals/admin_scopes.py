"""The admin page for scopes: every save goes through `approvals.services.scopes` (validation,
the record, and the requests whose signatures it makes stale)."""

import json

from django import forms
from django.contrib import admin

from approvals.errors import RequestInvalid
from approvals.models import AccessScope
from approvals.services.scopes import scope_check, scope_set
from approvals.surfaces import event_source


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class AccessScopeForm(forms.ModelForm):
    policy_text = forms.CharField(
        label="Policy document",
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "cols": 80}),
        help_text="An IAM policy (JSON) that narrows the role; actions as AWS spells them.",
    )
    arns_text = forms.CharField(
        label="Managed policy ARNs", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    networks_text = forms.CharField(
        label="Allowed networks",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One CIDR a line, within the profile's own; empty: the profile's.",
    )

    # Not the model's field: ticking it on a second scope moves the default (the service
    # unsets the other one), which the model's one-default constraint would refuse here.
    is_default = forms.BooleanField(label="Default scope", required=False)

    class Meta:
        model = AccessScope
        fields = ["profile", "name", "description"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            document = self.instance.policy_document
            self.initial["policy_text"] = json.dumps(document, indent=2) if document else ""
            self.initial["arns_text"] = "\n".join(self.instance.managed_policy_arns)
            self.initial["networks_text"] = "\n".join(self.instance.allowed_networks)
            self.initial["is_default"] = self.instance.is_default

    def clean(self) -> dict:
        data = super().clean() or {}
        # On the change page the profile is read-only (a scope never moves between profiles).
        profile = data.get("profile") or (self.instance.profile if self.instance.pk else None)
        if profile is None or not data.get("name"):
            return data
        try:
            scope_check(
                profile=profile,
                name=data["name"],
                policy_text=data.get("policy_text") or None,
                managed_policy_arns=_lines(data.get("arns_text", "")),
                networks=_lines(data.get("networks_text", "")),
            )
        except RequestInvalid as invalid:
            field_of = {"policy": "policy_text", "managed_policy_arns": "arns_text"}
            for field, problems in invalid.fields.items():
                target = field_of.get(field, "networks_text" if field == "networks" else field)
                self.add_error(target if target in self.fields else None, problems)
        taken = AccessScope.objects.filter(profile=profile, name=data["name"])
        if taken.exclude(pk=self.instance.pk).exists():
            self.add_error("name", f"{profile.slug} already has a scope named {data['name']}.")
        return data

    def validate_unique(self) -> None:
        """Checked in clean(), with the profile read-only on the change page."""


@admin.register(AccessScope)
class AccessScopeAdmin(admin.ModelAdmin):
    form = AccessScopeForm
    list_display = ["name", "profile", "is_default", "revision", "updated_at"]
    list_filter = ["profile"]
    readonly_fields = ["revision", "updated_at"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [*self.readonly_fields, *(["profile"] if obj is not None else [])]

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        saved = scope_set(
            profile_slug=obj.profile.slug,
            name=data["name"],
            policy_text=data.get("policy_text") or None,
            managed_policy_arns=_lines(data.get("arns_text", "")),
            networks=_lines(data.get("networks_text", "")),
            description=data.get("description", ""),
            make_default=data.get("is_default", False),
            scope_id=obj.pk if change else None,
            actor=request.user,
            source=event_source(request),
        )
        for field in saved._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def has_delete_permission(self, request, obj=None) -> bool:
        # A scope a request named stays: the record says what was asked for and signed.
        return obj is None or not obj.requests.exists()
