"""Page forms: shape and size of the input only; the rules live in the services."""

from django import forms

from approvals.errors import PortalError
from approvals.models import (
    JUSTIFICATION_MAX_LENGTH,
    MAX_PROFILE_DURATION_MINUTES,
    REASON_MAX_LENGTH,
    TICKET_MAX_LENGTH,
    Status,
)
from approvals.selectors import HistoryFilters

OTP_WIDGET = forms.TextInput(
    attrs={
        "autocomplete": "one-time-code",
        "inputmode": "numeric",
        "pattern": "[0-9]{6}",
        "maxlength": "6",
        "size": "8",
        "class": "otp",
    }
)


def otp_field(label: str = "Code from your authenticator app") -> forms.CharField:
    return forms.CharField(
        label=label,
        min_length=6,
        max_length=6,
        widget=OTP_WIDGET,
        error_messages={"required": "Enter the 6-digit code from your authenticator app."},
    )


def refusal_attach(form: forms.Form, error: PortalError) -> None:
    """Put a service refusal's field errors next to their fields, the rest above the form."""
    placed = False
    for name, messages in error.fields.items():
        if name in form.fields:
            for text in messages:
                form.add_error(name, text)
            placed = True
    if not placed:
        form.add_error(None, error.message)


class SignInForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class SecondFactorForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app (or a backup code)",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "size": "16"}
        ),
        error_messages={"required": "Enter the code from your authenticator app."},
    )


class EnrolForm(forms.Form):
    code = otp_field("First code your app shows")


class FreshCodeForm(forms.Form):
    code = otp_field()


TOKEN_LIFETIMES = [
    (7, "7 days"),
    (30, "30 days"),
    (90, "90 days"),
    (180, "180 days"),
    (365, "a year"),
]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label="What it is for", max_length=100, required=False, help_text="e.g. laptop CLI"
    )
    days = forms.TypedChoiceField(
        label="Expires after", choices=TOKEN_LIFETIMES, coerce=int, initial=90
    )


class TokenRevokeForm(forms.Form):
    token_id = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class RequestForm(forms.Form):
    profile = forms.ChoiceField(label="Access profile")
    ticket = forms.CharField(
        label="Ticket reference",
        max_length=TICKET_MAX_LENGTH,
        help_text="The incident or ticket this is for, e.g. INC-1234.",
        widget=forms.TextInput(attrs={"placeholder": "INC-1234", "autocomplete": "off"}),
    )
    justification = forms.CharField(
        max_length=JUSTIFICATION_MAX_LENGTH,
        help_text="What is broken and what you will do with the access. Approvers read this.",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)",
        min_value=1,
        max_value=MAX_PROFILE_DURATION_MINUTES,
        initial=30,
        help_text="Access ends automatically after this; each profile has its own maximum.",
    )
    scope = forms.ChoiceField(
        label="Scope",
        required=False,
        help_text="What the session may do within the role; approvers sign it with the request.",
    )

    def __init__(self, *args, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        profile_field = self.fields["profile"]
        assert isinstance(profile_field, forms.ChoiceField)
        profile_field.choices = [("", "Choose a profile…")] + [
            (
                p.slug,
                f"{p.name} ({p.slug}) — up to {p.max_duration_minutes} min, "
                f"{p.required_approvals} approvals",
            )
            for p in profiles
        ]
        self._scope_choices(profiles)

    def _scope_choices(self, profiles) -> None:
        """Scopes grouped by profile; with one profile to choose, it and its default scope are
        chosen already."""
        scope_field = self.fields["scope"]
        assert isinstance(scope_field, forms.ChoiceField)
        groups = [
            (p.slug, [(s.name, f"{s.name}{' (default)' if s.is_default else ''}") for s in scopes])
            for p in profiles
            if (scopes := list(p.scopes.all()))
        ]
        scope_field.choices = [("", "The profile's default scope"), *groups]
        if len(profiles) == 1:
            only = profiles[0]
            self.fields["profile"].initial = only.slug
            default = next((s for s in only.scopes.all() if s.is_default), None)
            scope_field.initial = default.name if default else ""


class ExtensionAskForm(forms.Form):
    prefix = "extend"
    minutes = forms.IntegerField(
        label="More minutes", min_value=1, max_value=MAX_PROFILE_DURATION_MINUTES, initial=15
    )
    reason = forms.CharField(
        label="Why the grant must last longer",
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class CodeAndReasonForm(forms.Form):
    """A signed step that needs a reason: a fresh code, and the reason labelled for the step."""

    reason_label = "Reason"
    code = otp_field()
    reason = forms.CharField(max_length=REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = self.reason_label


class RejectForm(CodeAndReasonForm):
    prefix = "reject"
    reason_label = "Reason for rejecting"


class ExtensionRejectForm(CodeAndReasonForm):
    prefix = "extreject"
    reason_label = "Reason for rejecting the extension"


class RevokeForm(CodeAndReasonForm):
    prefix = "revoke"
    reason_label = "Reason for ending access now"


class HistoryFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Status.choices])
    profile = forms.ChoiceField(required=False)
    requester = forms.CharField(required=False, max_length=150)
    ticket = forms.CharField(required=False, max_length=TICKET_MAX_LENGTH)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        profile_field = self.fields["profile"]
        assert isinstance(profile_field, forms.ChoiceField)
        profile_field.choices = [("", "Any profile")] + [(p.slug, p.slug) for p in profiles]

    def filters(self) -> HistoryFilters:
        if not self.is_valid():
            return HistoryFilters()
        data = self.cleaned_data
        return HistoryFilters(
            status=data["status"],
            profile=data["profile"],
            requester=data["requester"].strip(),
            ticket=data["ticket"].strip(),
            since=data["since"],
            until=data["until"],
        )
