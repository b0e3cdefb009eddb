"""Administration on the record.

Every change to an account, a group membership, a TOTP device, a person identifier, a profile,
an integration key or a webhook goes on the system chain with who made it and what it was
before and after, whichever path made it (the admin, a management command, the ORM in a
script): the record is written by model signals, in the transaction of the change, so a change
whose record cannot be written does not happen. Changes to who may approve, or to what a
profile grants, also raise an alarm. The acting person is the signed-in user of the web request
(approvals.services.administration_record), otherwise "system/command".

Changing a profile's approver group or lowering its required approvals is refused here unless a
second administrator confirmed it (approvals.services.profile_changes).
"""

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import Group, User
from django.db.models import Model, signals

from approvals import rules
from approvals.errors import NotAllowed
from approvals.models import (
    AccessProfile,
    IntegrationKey,
    PersonIdentity,
    SealedTOTPDevice,
    WebhookEndpoint,
)
from approvals.services.administration_record import (
    acting_user,
    administration_record,
    confirmed_change,
)


def _approver_profiles(group_ids: set[int]) -> list[str]:
    """Slugs of the profiles these groups approve (empty: none of them is an approver group)."""
    return list(
        AccessProfile.objects.filter(approver_group_id__in=group_ids)
        .order_by("slug")
        .values_list("slug", flat=True)
    )


def _approves_anything(user: User) -> list[str]:
    return _approver_profiles(set(user.groups.values_list("pk", flat=True)))


def _fingerprint(url: str) -> str:
    """A URL on the record without the secret many of them carry in the path or query."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/… sha256:{hashlib.sha256(url.encode()).hexdigest()}"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        field: {"before": before.get(field), "after": value}
        for field, value in after.items()
        if before.get(field) != value
    }


def _snapshot_before(sender: type[Model], instance: Model, snapshot) -> None:
    """Remember what the row was before this save (nothing when it is new)."""
    before = None
    if instance.pk is not None and not instance._state.adding:
        old = sender._default_manager.filter(pk=instance.pk).first()
        before = snapshot(old) if old is not None else None
    instance._administration_before = before  # type: ignore[attr-defined]  # read in post_save


# --- accounts -----------------------------------------------------------------------------


def _user_snapshot(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "password": hashlib.sha256(user.password.encode()).hexdigest()[:12],
    }


def _user_pre_save(sender, instance: User, raw: bool = False, update_fields=None, **kwargs):
    if raw or (update_fields is not None and set(update_fields) <= {"last_login"}):
        instance._administration_before = "skip"  # type: ignore[attr-defined]  # a sign-in
        return
    _snapshot_before(sender, instance, _user_snapshot)


def _user_post_save(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    before = getattr(instance, "_administration_before", None)
    if raw or before == "skip":
        return
    after = _user_snapshot(instance)
    subject = {"user": instance.username, "user_id": instance.pk}
    if created or before is None:
        detail = {**subject, "after": {k: v for k, v in after.items() if k != "password"}}
        superuser = instance.is_superuser
        administration_record(
            "approvals.admin.user_created",
            detail,
            f"administrator account {instance.username} created" if superuser else "",
            "superuser_granted",
        )
        return
    changes = _changes(before, after)
    if "password" in changes:
        changes["password"] = {"before": "…", "after": "changed"}
    if not changes:
        return
    _user_changed_record(instance, subject, changes)


def _user_changed_record(user: User, subject: dict[str, Any], changes: dict[str, Any]) -> None:
    code, alarm_title, kind = "approvals.admin.user_changed", "", ""
    if "is_active" in changes:
        code = f"approvals.admin.user_{'reactivated' if user.is_active else 'deactivated'}"
        profiles = _approves_anything(user)
        if profiles:
            verb = "reactivated" if user.is_active else "deactivated"
            alarm_title = f"approver {user.username} ({', '.join(profiles)}) {verb}"
            kind = "approvers_changed"
    if changes.get("is_superuser", {}).get("after") is True and not alarm_title:
        alarm_title, kind = f"{user.username} made a superuser", "superuser_granted"
    administration_record(code, {**subject, "changes": changes}, alarm_title, kind)


def _user_pre_delete(sender, instance: User, **kwargs):
    # Before the deletion takes its group memberships with it.
    profiles = _approves_anything(instance)
    administration_record(
        "approvals.admin.user_deleted",
        {"user": instance.username, "user_id": instance.pk, "approved": profiles},
        f"approver {instance.username} ({', '.join(profiles)}) deleted" if profiles else "",
        "approvers_changed",
    )


def _membership_pairs(instance, reverse: bool, pk_set) -> list[tuple[User, Group]]:
    if reverse:  # group.user_set.add(...): the instance is the group
        return [(user, instance) for user in User.objects.filter(pk__in=pk_set)]
    return [(instance, group) for group in Group.objects.filter(pk__in=pk_set)]


def _groups_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs):
    if action == "pre_clear":
        # clear() names no ids: remember who was in it to record each removal.
        if reverse:
            instance._administration_cleared = set(instance.user_set.values_list("pk", flat=True))
        else:
            instance._administration_cleared = set(instance.groups.values_list("pk", flat=True))
        return
    if action == "post_clear":
        action, pk_set = "post_remove", getattr(instance, "_administration_cleared", set())
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    added = action == "post_add"
    for user, group in _membership_pairs(instance, reverse, pk_set):
        _membership_record(user, group, added)


def _membership_record(user: User, group: Group, added: bool) -> None:
    groups_after = sorted(user.groups.values_list("name", flat=True))
    groups_before = sorted(
        (set(groups_after) - {group.name}) if added else ({*groups_after, group.name})
    )
    profiles = _approver_profiles({group.pk})
    verb = "added to" if added else "removed from"
    alarm_title = ""
    if profiles and user.is_active:
        alarm_title = f"{user.username} {verb} approver group {group.name} ({', '.join(profiles)})"
    administration_record(
        f"approvals.admin.group_member_{'added' if added else 'removed'}",
        {
            "user": user.username,
            "user_id": user.pk,
            "group": group.name,
            "approves": profiles,
            "groups": {"before": groups_before, "after": groups_after},
        },
        alarm_title,
        "approvers_changed",
    )


# --- who a person is, and how they sign ----------------------------------------------------


def _person_pre_save(sender, instance: PersonIdentity, raw: bool = False, **kwargs):
    if not raw:
        _snapshot_before(sender, instance, lambda person: person.identifier)


def _person_post_save(sender, instance: PersonIdentity, raw: bool = False, **kwargs):
    before = getattr(instance, "_administration_before", None)
    if raw or before == instance.identifier:
        return
    _person_record(instance.user, before, instance.identifier)


def _person_post_delete(sender, instance: PersonIdentity, **kwargs):
    _person_record(instance.user, instance.identifier, None)


def _person_record(user: User, before: str | None, after: str | None) -> None:
    profiles = _approves_anything(user)
    alarm_title = ""
    if profiles:
        # Whether two of this person's accounts count as two approvers depends on it.
        alarm_title = f"person identifier of approver {user.username} changed"
    administration_record(
        "approvals.admin.person_identifier_changed",
        {
            "user": user.username,
            "user_id": user.pk,
            "identifier": {"before": before, "after": after},
        },
        alarm_title,
        "person_changed",
    )


def _device_snapshot(device: SealedTOTPDevice) -> dict[str, Any]:
    return {
        "confirmed": device.confirmed,
        "seed": hashlib.sha256(device.sealed_key.encode()).hexdigest()[:12],
    }


def _device_pre_save(
    sender, instance: SealedTOTPDevice, raw: bool = False, update_fields=None, **kwargs
):
    if raw or (update_fields is not None and set(update_fields) <= set(sender.VERIFICATION_FIELDS)):
        instance._administration_before = "skip"  # a code checked, nothing administered
        return
    _snapshot_before(sender, instance, _device_snapshot)


def _device_post_save(sender, instance: SealedTOTPDevice, created: bool, raw=False, **kwargs):
    before = getattr(instance, "_administration_before", None)
    if raw or before == "skip":
        return
    if created or before is None:
        _device_record(instance, "approvals.admin.device_added", instance.confirmed)
    elif _changes(before, _device_snapshot(instance)):  # not a sign-in's throttle counter
        _device_record(instance, "approvals.admin.device_changed", instance.confirmed)


def _device_post_delete(sender, instance: SealedTOTPDevice, **kwargs):
    _device_record(instance, "approvals.admin.device_removed", instance.confirmed)


def _device_record(device: SealedTOTPDevice, code: str, confirmed: bool) -> None:
    owner: User = device.user
    actor = acting_user()
    profiles = _approves_anything(owner)
    alarm_title = ""
    if profiles and (actor is None or actor.pk != owner.pk) and _replaces(device, code):
        # Whoever sets an approver's seed can sign as that approver. (A new account's first
        # device is not a replacement: its joining the approvers raised the alarm.)
        alarm_title = f"TOTP device of approver {owner.username} replaced by someone else"
    administration_record(
        code,
        {
            "user": owner.username,
            "user_id": owner.pk,
            "device": device.persistent_id,
            "confirmed": confirmed,
        },
        alarm_title,
        "device_changed",
    )


def _replaces(device: SealedTOTPDevice, code: str) -> bool:
    """Whether this takes over from a device the approver already signed with."""
    if code == "approvals.admin.device_removed":
        return device.confirmed
    if code == "approvals.admin.device_changed":
        return True
    return (
        SealedTOTPDevice.objects.filter(user_id=device.user_id, confirmed=True)
        .exclude(pk=device.pk)
        .exists()
    )


# --- profiles -------------------------------------------------------------------------------

# Changes to these are recorded without an alarm: they are not what a profile grants, nor to
# whom. Every other field (including any added later) raises one.
PROFILE_QUIET_FIELDS = ("name", "notify_emails", "chat_webhook_url")


def _profile_snapshot(profile: AccessProfile) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for field in profile._meta.concrete_fields:
        if field.primary_key:
            continue
        value = field.value_from_object(profile)
        if field.name == "chat_webhook_url":
            value = _fingerprint(value)
        elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            value = str(value)
        snapshot[field.attname] = value
    snapshot["approver_group"] = (
        Group.objects.filter(pk=profile.approver_group_id).values_list("name", flat=True).first()
    )
    return snapshot


def _profile_pre_save(sender, instance: AccessProfile, raw: bool = False, **kwargs):
    if raw:
        return
    _snapshot_before(sender, instance, _profile_snapshot)
    before = instance._administration_before  # type: ignore[attr-defined]  # set just above
    if before is None:
        return
    if rules.profile_change_needs_second_admin(
        old_group_id=before["approver_group_id"],
        new_group_id=instance.approver_group_id,
        old_required=before["required_approvals"],
        new_required=instance.required_approvals,
    ) and not _confirmed_for(instance):
        raise NotAllowed(
            f"changing who approves profile {instance.slug} or lowering its required approvals "
            "needs a second administrator: propose the change in the admin and have another "
            "administrator confirm it with a TOTP code",
            code="second_admin_required",
        )


def _confirmed_for(profile: AccessProfile) -> bool:
    change = confirmed_change()
    return (
        change is not None
        and change.profile_id == profile.pk
        and change.new_approver_group_id == profile.approver_group_id
        and change.new_required_approvals == profile.required_approvals
    )


def _profile_post_save(sender, instance: AccessProfile, created: bool, raw=False, **kwargs):
    if raw:
        return
    before = getattr(instance, "_administration_before", None)
    after = _profile_snapshot(instance)
    after.pop("approver_group_id")
    if created or before is None:
        administration_record(
            "approvals.admin.profile_created",
            {"profile": instance.slug, "after": after},
            f"profile {instance.slug} created: it grants {instance.role_arn}",
            "profile_changed",
        )
        return
    before.pop("approver_group_id")
    changes = _changes(before, after)
    if not changes:
        return
    granting = sorted(set(changes) - set(PROFILE_QUIET_FIELDS))
    administration_record(
        "approvals.admin.profile_changed",
        {"profile": instance.slug, "changes": changes},
        f"profile {instance.slug} changed: {', '.join(granting)}" if granting else "",
        "profile_changed",
    )


def _profile_post_delete(sender, instance: AccessProfile, **kwargs):
    administration_record(
        "approvals.admin.profile_deleted",
        {"profile": instance.slug, "role_arn": instance.role_arn},
        f"profile {instance.slug} deleted",
        "profile_changed",
    )


# --- integrations ----------------------------------------------------------------------------


def _integration_snapshot(key: IntegrationKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _webhook_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": _fingerprint(endpoint.url),
        "integration": endpoint.integration.name if endpoint.integration is not None else None,
        "active": endpoint.active,
        "secret": hashlib.sha256(endpoint.sealed_secret.encode()).hexdigest()[:12],
    }


_SNAPSHOTS: dict[type[Model], Callable[[Any], dict[str, Any]]] = {
    IntegrationKey: _integration_snapshot,
    WebhookEndpoint: _webhook_snapshot,
}
_NOUNS = {IntegrationKey: "integration_key", WebhookEndpoint: "webhook"}


def _integration_pre_save(sender, instance, raw: bool = False, **kwargs):
    if not raw:
        _snapshot_before(sender, instance, _SNAPSHOTS[sender])


def _integration_post_save(sender, instance, created: bool, raw: bool = False, **kwargs):
    if raw:
        return
    before = getattr(instance, "_administration_before", None)
    after, noun = _SNAPSHOTS[sender](instance), _NOUNS[sender]
    if created or before is None:
        administration_record(
            f"approvals.admin.{noun}_created", {"id": instance.pk, "after": after}
        )
        return
    changes = _changes(before, after)
    if changes:
        administration_record(
            f"approvals.admin.{noun}_changed", {"id": instance.pk, "changes": changes}
        )


def _integration_post_delete(sender, instance, **kwargs):
    administration_record(
        f"approvals.admin.{_NOUNS[sender]}_deleted",
        {"id": instance.pk, "before": _SNAPSHOTS[sender](instance)},
    )


def administration_signals_connect() -> None:
    """Wire the record to every path that changes these models (called from AppConfig.ready)."""
    uid = "breakglass-administration"
    signals.pre_save.connect(_user_pre_save, sender=User, dispatch_uid=f"{uid}-user-pre")
    signals.post_save.connect(_user_post_save, sender=User, dispatch_uid=f"{uid}-user-post")
    signals.pre_delete.connect(_user_pre_delete, sender=User, dispatch_uid=f"{uid}-user-delete")
    signals.m2m_changed.connect(
        _groups_changed, sender=User.groups.through, dispatch_uid=f"{uid}-groups"
    )
    for model, pre, post, delete in (
        (PersonIdentity, _person_pre_save, _person_post_save, _person_post_delete),
        (SealedTOTPDevice, _device_pre_save, _device_post_save, _device_post_delete),
        (AccessProfile, _profile_pre_save, _profile_post_save, _profile_post_delete),
        (IntegrationKey, _integration_pre_save, _integration_post_save, _integration_post_delete),
        (WebhookEndpoint, _integration_pre_save, _integration_post_save, _integration_post_delete),
    ):
        name = model._meta.model_name
        signals.pre_save.connect(pre, sender=model, dispatch_uid=f"{uid}-{name}-pre")
        signals.post_save.connect(post, sender=model, dispatch_uid=f"{uid}-{name}-post")
        signals.post_delete.connect(delete, sender=model, dispatch_uid=f"{uid}-{name}-delete")
