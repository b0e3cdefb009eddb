"""The Drills page: every rehearsal of the procedure, with its timings and their trend."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals import selectors
from approvals.web.access import verified_required

CHART_WIDTH, CHART_HEIGHT = 600, 160


def _trend_points(values: list[int | None]) -> str:
    """SVG polyline points for a series, oldest left; gaps (failed steps) are skipped."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return ""
    top = max(known) or 1
    step = CHART_WIDTH / (len(values) - 1)
    return " ".join(
        f"{i * step:.0f},{CHART_HEIGHT - v / top * (CHART_HEIGHT - 10):.0f}"
        for i, v in enumerate(values)
        if v is not None
    )


@require_GET
@verified_required()
def drills(request: HttpRequest) -> HttpResponse:
    recent = selectors.drills_recent(limit=50)
    oldest_first = list(reversed(recent))
    return render(
        request,
        "drills.html",
        {
            "drills": recent,
            "chart": {
                "width": CHART_WIDTH,
                "height": CHART_HEIGHT,
                "access": _trend_points([d.time_to_access_ms for d in oldest_first]),
                "revoke": _trend_points([d.time_to_revoke_ms for d in oldest_first]),
                "refused": _trend_points([d.time_to_refused_ms for d in oldest_first]),
            },
        },
    )
