"""What debug pages and error reports may show.

Django's SafeExceptionReporterFilter hides settings and request META entries whose *names* look
secret (KEY, TOKEN, PASS, ...). A password inside a URL — DATABASE_URL, CELERY_BROKER_URL, a
Redis cache LOCATION — has an innocent name, and under `runserver` every environment variable is
in request.META too; this filter hides those passwords wherever such a URL appears.
"""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host: everything from the ':' after the user name up to the last '@'
# (hiding too much is harmless; a password containing '@' must not leak its tail).
_URL_PASSWORD = re.compile(
    r"(?P<prefix>[a-z][a-z0-9+.-]*://[^/@:\s]*:)(?P<password>[^\s]*)(?=@)", flags=re.I
)


class UrlPasswordCleansingFilter(SafeExceptionReporterFilter):
    # Also hidden whole: webhook URLs, whose path is the credential (Slack incoming webhooks).
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|WEBHOOK_URL", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return _URL_PASSWORD.sub(
                lambda match: match.group("prefix") + self.cleansed_substitute, cleansed
            )
        return cleansed
