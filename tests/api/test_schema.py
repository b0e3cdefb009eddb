import io
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import checks as st_checks
from schemathesis.core.failures import FailureGroup

from approvals.services.liveness import heartbeat
from portal.wsgi import application

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_validates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stdout=out)


def test_the_schema_is_served_and_describes_every_endpoint(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    paths = response.json()["paths"]
    assert response.status_code == 200
    assert {
        "/api/v1/requests/",
        "/api/v1/requests/{id}/approve/",
        "/api/v1/requests/{id}/credentials/",
        "/api/v1/requests/{id}/timeline/",
        "/healthz",
    } <= set(paths)


def test_swagger_ui_is_served_from_local_static_files_only(client):
    html = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


FUZZ_CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]


@pytest.fixture
def wsgi_app_in_test_transaction():
    """The real WSGI app, kept from closing the test's connection after each request (what
    Django's own test client does too)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield application
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def test_fuzzing_the_api_from_its_own_schema_finds_no_5xx_and_no_undocumented_response(
    api, settings, wsgi_app_in_test_transaction
):
    settings.API_THROTTLE_RATES = {k: "100000/min" for k in settings.API_THROTTLE_RATES}
    api.cast.open_request()
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/",
        wsgi_app_in_test_transaction,
        headers={"Accept": "application/vnd.oai.openapi+json"},
    )
    auth = {"Authorization": f"Bearer {api.secrets['alice']}"}
    failures: list[str] = []
    bounded = hypothesis_settings(
        max_examples=25,
        deadline=timedelta(seconds=5),
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    for result in schema.get_all_operations():
        operation = result.ok()

        @bounded
        @given(case=operation.as_strategy())
        def fuzz(case) -> None:
            # A live system: /healthz answers 200 however long the run has taken so far (its
            # heartbeat limit is 60 s, which a loaded machine can spend before reaching it).
            for component in ("worker", "sweeper", "watcher"):
                heartbeat(component=component)
            case.call_and_validate(headers=auth, checks=FUZZ_CHECKS)

        try:
            fuzz()
        except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
