import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP

from approvals.models import SealedTOTPDevice


class Command(BaseCommand):
    help = "Development only: print a user's current TOTP code (stands in for a phone in demos)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_code would defeat the second factor; not in production")
        device = SealedTOTPDevice.objects.filter(
            user__username=options["username"], confirmed=True
        ).first()
        if device is None:
            raise CommandError(f"user {options['username']!r} has no confirmed TOTP device")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        self.stdout.write(f"{totp.token():0{device.digits}d}")
