import json

from django.core.management.base import BaseCommand

from approvals import signatures


class Command(BaseCommand):
    help = (
        "Print the public keys that verify the portal's signatures (approvals, timeline seals and "
        "checkpoints) as JSON; --generate prints a new private key for BREAKGLASS_SIGNING_KEY."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--generate", action="store_true", help="print a new private key and nothing else"
        )

    def handle(self, *args, **options) -> None:
        if options["generate"]:
            self.stdout.write(signatures.key_generate())
            return
        keys = [key.as_dict() for key in signatures.public_keys()]
        self.stdout.write(json.dumps({"keys": keys}, indent=2))
