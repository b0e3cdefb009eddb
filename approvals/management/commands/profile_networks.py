from django.core.management.base import BaseCommand, CommandError

from approvals.errors import RequestInvalid
from approvals.services.scopes import profile_networks_set


class Command(BaseCommand):
    help = (
        "Set the networks (CIDRs) an access profile's sessions may call AWS from, or --any. "
        "Calls from elsewhere are refused, except those AWS services make on the session's "
        "behalf. Requests waiting for signatures must be signed again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile", help="the access profile's slug")
        parser.add_argument("cidrs", nargs="*", metavar="CIDR")
        parser.add_argument("--any", action="store_true", help="allow calls from anywhere")

    def handle(self, *args, **options) -> None:
        if options["any"] == bool(options["cidrs"]):
            raise CommandError("give either CIDRs or --any")
        try:
            profile = profile_networks_set(
                profile_slug=options["profile"],
                networks=None if options["any"] else options["cidrs"],
            )
        except RequestInvalid as exc:
            messages = [m for field in exc.fields.values() for m in field]
            raise CommandError(f"{exc.message} " + "; ".join(messages)) from None
        where = ", ".join(profile.allowed_networks) or "anywhere"
        self.stdout.write(f"{profile.slug}: sessions work from {where}")
