from django.core.management.base import BaseCommand, CommandError

from approvals.timeline import timeline_verify


class Command(BaseCommand):
    help = "Recompute the timeline's hash chains; exit non-zero naming the first broken event."

    def handle(self, *args, **options) -> None:
        result = timeline_verify()
        if not result.ok:
            where = f"event {result.broken_event_id}" if result.broken_event_id else "chain end"
            raise CommandError(
                f"timeline broken at {where} ({result.broken_chain} #{result.broken_sequence}): "
                f"{result.reason}; {result.events_checked} events verified before it"
            )
        self.stdout.write(f"timeline intact: {result.events_checked} events verified")
