"""The cast every test shares: a profile, a requester, two approvers, an outsider, an auditor."""

import time
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django_otp.oath import TOTP

from approvals.models import AccessProfile, SealedTOTPDevice
from approvals.services.identity import totp_device_set
from approvals.services.requests import request_open
from tests.administration import administration_alarms_cleared

pytest_plugins = ["tests.sandbox_plugin"]

ACCOUNT_ID = "123456789012"


def totp_code(user: User, *, steps_ahead: int = 0) -> str:
    """The code the user's authenticator shows now (or `steps_ahead` periods later)."""
    device = SealedTOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def fresh_code(user: User) -> str:
    """A code the device has not consumed yet (waits for the next time step when all are)."""
    for _ in range(3):
        device = SealedTOTPDevice.objects.get(user=user)
        code = device.unused_code()
        if code is not None:
            return code
        time.sleep(device.seconds_to_next_step() + 0.05)
    raise RuntimeError(f"no fresh TOTP code for {user} after waiting")


@dataclass
class Cast:
    profile: AccessProfile
    requester: User
    alice: User
    bob: User
    carol: User
    outsider: User
    auditor: User

    def open_request(self, **overrides):
        values = {
            "profile_slug": self.profile.slug,
            "requester": self.requester,
            "ticket": "INC-1234",
            "justification": "Database failover is stuck; need admin to promote the replica.",
            "duration_minutes": 30,
        }
        values.update(overrides)
        return request_open(**values)


def make_user(username: str, *groups: Group) -> User:
    user = User.objects.create_user(username=username, password=f"{username}-password-123")
    user.groups.add(*groups)
    totp_device_set(user=user)
    return user


@pytest.fixture
def cast(db) -> Cast:
    approvers = Group.objects.create(name=settings.APPROVERS_GROUP)
    auditors = Group.objects.create(name=settings.AUDITORS_GROUP)
    profile = AccessProfile.objects.create(
        slug="prod-admin",
        name="Production admin",
        account_id=ACCOUNT_ID,
        region="eu-west-1",
        role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/breakglass-admin",
        principal_arn=f"arn:aws:iam::{ACCOUNT_ID}:user/breakglass-principal",
        max_duration_minutes=60,
        approver_group=approvers,
    )
    cast = Cast(
        profile=profile,
        requester=make_user("rita"),
        alice=make_user("alice", approvers),
        bob=make_user("bob", approvers),
        carol=make_user("carol", approvers),
        outsider=make_user("oscar"),
        auditor=make_user("audrey", auditors),
    )
    administration_alarms_cleared()
    return cast
