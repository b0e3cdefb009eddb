import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from approvals.models import AccessRequest
from approvals.services.timeline_audit import Audit, timeline_audit


def _where(chain: str | None) -> str:
    """A chain as a person reads it: the request (and its ticket), or the system chain."""
    if chain and chain.startswith("request:"):
        request_id = chain.split(":", 1)[1]
        ticket = (
            AccessRequest.objects.filter(pk=request_id).values_list("ticket", flat=True).first()
        )
        return f"request {request_id}" + (f" ({ticket})" if ticket else " (request row gone)")
    return chain or "the timeline"


class Command(BaseCommand):
    help = (
        "Recompute the timeline's hash chains and check every chain head against the newest "
        "signed checkpoint in the anchor bucket; exit non-zero naming the first broken request. "
        "--incremental starts from the checkpoint the last run verified."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="verify only what was appended since the checkpoint the last run verified",
        )
        parser.add_argument(
            "--state",
            default=str(Path(settings.VAR_DIR) / "timeline-verified.json"),
            help="where the last verified checkpoint is remembered (keep it off the database)",
        )

    def handle(self, *args, **options) -> None:
        state = Path(options["state"])
        since = None
        if options["incremental"] and state.exists():
            since = int(json.loads(state.read_text())["checkpoint"])
        audit = timeline_audit(since=since)
        result = audit.verification
        if not result.ok:
            where = f"event {result.broken_event_id}" if result.broken_event_id else "chain end"
            raise CommandError(
                f"timeline broken: {_where(result.broken_chain)}, {where} "
                f"(#{result.broken_sequence}): {result.reason}; "
                f"{result.events_checked} events verified before it"
            )
        self.stdout.write(self._report(audit))
        if audit.anchored and audit.checkpoint is not None:
            state.write_text(json.dumps({"checkpoint": audit.checkpoint.sequence}))

    def _report(self, audit: Audit) -> str:
        result = audit.verification
        scope = f"since checkpoint #{audit.since}" if audit.since else "from the first event"
        lines = [f"timeline intact: {result.events_checked} events verified ({scope})"]
        checkpoint = audit.checkpoint
        if checkpoint is None:
            lines.append("no signed checkpoint yet: only the hash chains were checked")
        else:
            header = checkpoint.header
            lines.append(
                f"every chain matches {'anchored ' if audit.anchored else ''}checkpoint "
                f"#{checkpoint.sequence} signed {header['created_at']} by key "
                f"{checkpoint.signature.key_id} ({header['event_count']} events in "
                f"{header['chain_count']} chains); later events rest on their hash chain "
                "until the next checkpoint"
            )
        lines += audit.notes
        return "\n".join(lines)
