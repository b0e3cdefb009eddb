from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.services.key_rotation import sealed_values_rotate


class Command(BaseCommand):
    help = (
        "Re-seal every value encrypted at rest under the first (newest) key of "
        "BREAKGLASS_ENCRYPTION_KEYS; afterwards the older keys can be removed. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=200, help="rows per transaction")

    def handle(self, *args: object, **options: object) -> None:
        batch_size = options["batch_size"]
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        report = sealed_values_rotate(batch_size=batch_size)
        self.stdout.write(
            f"re-sealed {report.resealed} value(s); {report.already_current} already under the "
            f"newest key"
        )
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} value(s) open with none of the configured keys "
                f"(was an old key removed before rotating?): {', '.join(report.unreadable[:20])}"
            )
