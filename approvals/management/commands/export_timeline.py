from django.core.management.base import BaseCommand, CommandError

from approvals.errors import NotFound
from approvals.exports import record_as_csv, record_as_json
from approvals.selectors import request_get


class Command(BaseCommand):
    help = "Write one request's incident record (request, signatures, timeline) as JSON or CSV."

    def add_arguments(self, parser) -> None:
        parser.add_argument("request_id")
        parser.add_argument("--format", choices=["json", "csv"], default="json")

    def handle(self, *args, **options) -> None:
        try:
            access_request = request_get(access_request_id=options["request_id"])
        except NotFound as exc:
            raise CommandError(exc.message) from None
        render = record_as_json if options["format"] == "json" else record_as_csv
        self.stdout.write(render(access_request), ending="")
