"""Template filters of the portal's pages."""

from datetime import datetime

from django import template
from django.utils import timezone

from approvals.web.presentation import remaining_text

register = template.Library()


@register.filter
def remaining(until: datetime | None) -> str:
    """'12 min left' until `until`, as of the moment the page renders."""
    return remaining_text(until, timezone.now())
