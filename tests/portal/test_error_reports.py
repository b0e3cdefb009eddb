"""The debug page (development) and emailed error reports (production) must not hand out the
passwords inside URL-shaped settings: DATABASE_URL, the broker, the Redis cache. Django hides
settings and request META entries by *name* (KEY, PASS, TOKEN, ...); these names look innocent,
and under `runserver` the whole environment is in request.META as well."""

import sys

from django.test import RequestFactory
from django.views.debug import technical_500_response

# Composed, so the test's own source lines (which the page shows around each frame) never hold
# a whole secret: only the settings and the request could put one on the page.
PASSWORD = "hunter2"
DATABASE_URL = f"postgres://breakglass:db-{PASSWORD}@postgres:5432/breakglass"
BROKER_URL = f"redis://:broker-{PASSWORD}@redis:6379/0"
CACHE_URL = f"rediss://default:cache-{PASSWORD}@cache.internal:6380/1"
CHAT_WEBHOOK_URL = f"https://hooks.slack.com/services/T0000/B0000/chat-{PASSWORD}"


def debug_page(request) -> str:
    try:
        raise RuntimeError("something broke")
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def request_from_runserver():
    """runserver's requests carry the process environment in META."""
    return RequestFactory().get(
        "/requests/", DATABASE_URL=DATABASE_URL, CELERY_BROKER_URL=BROKER_URL
    )


def test_the_debug_page_hides_passwords_inside_urls(settings):
    settings.DEBUG = True
    settings.DATABASE_URL = DATABASE_URL
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CACHE_URL = CACHE_URL
    settings.SECURITY_CHAT_WEBHOOK_URL = CHAT_WEBHOOK_URL

    page = debug_page(request_from_runserver())

    # It is the page that lists settings and META, with the URLs' harmless parts intact...
    assert "something broke" in page
    assert "postgres://breakglass:" in page and "@postgres:5432/breakglass" in page
    assert "redis://:" in page and "@redis:6379/0" in page
    # ...and none of the secrets.
    assert PASSWORD not in page


def test_urls_without_a_password_are_shown_as_they_are(settings):
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = "redis://redis:6379/0"

    page = debug_page(RequestFactory().get("/"))

    assert "redis://redis:6379/0" in page
