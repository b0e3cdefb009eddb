from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from approvals.errors import RequestInvalid
from approvals.services.api_access import integration_key_create


class Command(BaseCommand):
    help = "Create an integration key for a ticketing/incident tool; the key is printed once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="recorded on the requests it opens")
        parser.add_argument("--expires-days", type=int, help="the key stops working after this")

    def handle(self, *args, **options) -> None:
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1")
        try:
            _, key = integration_key_create(
                name=options["name"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except RequestInvalid as exc:
            raise CommandError("; ".join(m for f in exc.fields.values() for m in f)) from None
        self.stdout.write(key)
