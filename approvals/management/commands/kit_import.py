import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.errors import PortalError
from approvals.services.offline_kit import kit_record_import


class Command(BaseCommand):
    help = (
        "Add the custodians' signed record of an offline kit opening (written by `breakglass "
        "kit open`) to the opening's incident record, after checking its signature."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("record", help="offline-opening-<kit>-<time>.json")

    def handle(self, *args, **options) -> None:
        try:
            signed = json.loads(Path(options["record"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {options['record']}: {exc}") from None
        try:
            opening = kit_record_import(signed=signed)
        except PortalError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"record of {opening.source_identity} verified and added to request "
            f"{opening.request_id}"
        )
