"""Reads of drills and offline kits."""

from dataclasses import dataclass

from django.db.models import Count, Prefetch

from approvals.models import Drill, OfflineKit


def drills_recent(*, limit: int = 50) -> list[Drill]:
    return list(Drill.objects.select_related("profile")[:limit])


@dataclass(frozen=True)
class KitRow:
    kit: OfflineKit
    openings: int
    last_drill: Drill | None


def offline_kits_overview(*, limit: int = 20) -> list[KitRow]:
    """The offline kits (issue 18), newest first, each with its state and last drill: three
    queries whatever their number."""
    kits = (
        OfflineKit.objects.select_related("profile")
        .annotate(openings_count=Count("openings"))
        .prefetch_related(Prefetch("drills", queryset=Drill.objects.order_by("-started_at")))
        .order_by("-created_at")[:limit]
    )
    return [
        KitRow(kit=kit, openings=kit.openings_count, last_drill=next(iter(kit.drills.all()), None))
        for kit in kits
    ]
