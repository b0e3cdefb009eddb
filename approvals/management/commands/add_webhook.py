from django.core.management.base import BaseCommand, CommandError

from approvals.errors import RequestInvalid
from approvals.models import IntegrationKey
from approvals.services.webhooks import webhook_endpoint_create


class Command(BaseCommand):
    help = "Register a webhook receiver; its signing secret is printed once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("url")
        parser.add_argument(
            "--integration",
            help="only this integration's requests (and all alarms); default: everything",
        )

    def handle(self, *args, **options) -> None:
        integration = None
        if options["integration"]:
            integration = IntegrationKey.objects.filter(name=options["integration"]).first()
            if integration is None:
                raise CommandError(f"no integration called {options['integration']!r}")
        try:
            _, secret = webhook_endpoint_create(url=options["url"], integration=integration)
        except RequestInvalid as exc:
            raise CommandError("; ".join(m for f in exc.fields.values() for m in f)) from None
        self.stdout.write(secret)
