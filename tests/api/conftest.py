"""API callers for the cast: a personal token each, and two integration keys."""

import json
from dataclasses import dataclass, field

import pytest
from django.test import Client

from approvals.services.api_access import integration_key_create, personal_token_create
from tests.conftest import Cast
from tests.worker.conftest import live  # noqa: F401

INTEGRATION = "pagerduty"
OTHER_INTEGRATION = "servicenow"


@dataclass
class Api:
    cast: Cast
    client: Client
    secrets: dict[str, str] = field(default_factory=dict)

    def call(self, who: str | None, method: str, path: str, body=None, **headers):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        if who is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.secrets[who]}"
        data = json.dumps(body) if body is not None else None
        return self.client.generic(
            method, path, data=data or "", content_type="application/json", **extra
        )

    def get(self, who, path, **headers):
        return self.call(who, "GET", path, **headers)

    def post(self, who, path, body=None, **headers):
        return self.call(who, "POST", path, body if body is not None else {}, **headers)

    def open_body(self, **overrides) -> dict:
        body = {
            "profile": self.cast.profile.slug,
            "ticket": "INC-4242",
            "justification": "Payments database is down; need admin to fail over.",
            "duration_minutes": 30,
        }
        body.update(overrides)
        return body


@pytest.fixture
def api(cast) -> Api:
    harness = Api(cast=cast, client=Client())
    for user in (cast.requester, cast.alice, cast.bob, cast.carol, cast.outsider, cast.auditor):
        harness.secrets[user.username] = personal_token_create(user=user, name="tests")
    for name in (INTEGRATION, OTHER_INTEGRATION):
        harness.secrets[name] = integration_key_create(name=name)[1]
    return harness


def assert_error(response, status: int, code: str | None = None, message: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    if message is not None:
        assert message in body["error"]["message"], body
    return body["error"]
