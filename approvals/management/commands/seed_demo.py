import json
from base64 import b32encode
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from approvals.models import AccessProfile, SealedTOTPDevice
from approvals.services.identity import user_provision

DEMO_USERS = [("rita", False), ("alice", True), ("bob", True)]


class Command(BaseCommand):
    help = (
        "Seed the demo: a `sandbox` profile on the local AWS sandbox, a requester, two approvers."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sandbox-state", default=str(settings.VAR_DIR / "sandbox"))

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates users with known passwords; not in production")
        state_file = Path(options["sandbox_state"]) / "sandbox.json"
        if not state_file.exists():
            raise CommandError(f"{state_file} not found: bootstrap the AWS sandbox first")
        sandbox = json.loads(state_file.read_text())
        approvers, _ = Group.objects.get_or_create(name=settings.APPROVERS_GROUP)
        Group.objects.get_or_create(name=settings.AUDITORS_GROUP)
        AccessProfile.objects.update_or_create(
            slug="sandbox",
            defaults={
                "name": "Sandbox admin (local AWS sandbox)",
                "account_id": sandbox["account_id"],
                "region": sandbox["region"],
                "role_arn": sandbox["role_arn"],
                "principal_arn": sandbox["principal_arn"],
                "max_duration_minutes": 60,
                "approver_group": approvers,
            },
        )
        self.stdout.write("Demo users (sign in at the portal with these; TOTP secrets below):")
        for username, approver in DEMO_USERS:
            password = f"{username}-demo-password"
            provisioned = user_provision(username=username, password=password, approver=approver)
            device = SealedTOTPDevice.objects.get(user=provisioned.user)
            secret = b32encode(device.bin_key).decode().rstrip("=")
            role = "approver " if approver else "requester"
            self.stdout.write(f"  {role} {username:6} password {password:22} TOTP secret {secret}")
        self.stdout.write(
            "Add a secret to any authenticator app (manual entry, TOTP, 6 digits, 30 s), or print "
            "a user's current code with: .venv/bin/python manage.py demo_code USERNAME"
        )
