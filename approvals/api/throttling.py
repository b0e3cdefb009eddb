"""Request budgets per personal token, per integration key and per session user.

Counters live in Django's default cache, which settings point at Redis or the database so that
every web process counts against the same budget.
"""

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from approvals.models import IntegrationKey, PersonalToken

logger = logging.getLogger(__name__)


class CallerRateThrottle(SimpleRateThrottle):
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self) -> None:
        # The scope depends on the caller, so the rate is chosen per request.
        pass

    def get_cache_key(self, request, view) -> str | None:
        # Keyed on the stored hash, not the row id: ids are reused when a database is rebuilt,
        # counters in a shared Redis are not.
        if isinstance(request.auth, PersonalToken):
            self.scope, ident = "token", request.auth.token_hash
        elif isinstance(request.auth, IntegrationKey):
            self.scope, ident = "integration", request.auth.key_hash
        elif request.user is not None and request.user.is_authenticated:
            self.scope, ident = "session", f"{request.user.pk}:{request.user.get_username()}"
        else:
            return None
        # Read on every request (not at import) so a changed setting takes effect.
        self.rate = settings.API_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        try:
            self.history = self.cache.get(self.key, [])
        except Exception:
            # Break-glass must stay usable in an incident even if the cache is down.
            logger.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True
        # Both come from the configured rate, which every caller scope has.
        assert self.duration is not None and self.num_requests is not None
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()
