"""The approver dashboard: what waits for my signature, what is live, and the history."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from approvals import selectors
from approvals.web.access import verified_required
from approvals.web.forms import HistoryFilterForm


@require_GET
@verified_required()
def dashboard(request: HttpRequest) -> HttpResponse:
    profiles = selectors.profiles_all()
    filter_form = HistoryFilterForm(request.GET or None, profiles=profiles)
    board = selectors.dashboard_get(
        user=request.user,
        filters=filter_form.filters(),
        page_number=request.GET.get("page", 1),
    )
    filtered = any(filter_form.data.get(name) for name in filter_form.fields)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboard.html",
        {
            "board": board,
            "filter_form": filter_form,
            "filter_query": query.urlencode(),
            "filtered": filtered,
            "offline_kits": selectors.offline_kits_overview(),
        },
    )
