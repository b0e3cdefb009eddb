"""`breakglass request --scope`: the scope is asked for by name and shown with the request; an
unknown scope is one line naming the problem, and nothing is opened."""

import json

import pytest

from approvals.models import AccessRequest
from approvals.services.scopes import scope_set
from tests.cli.conftest import expect_error

pytestmark = pytest.mark.django_db(transaction=True)

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
ASK = ("--ticket", "INC-9", "--minutes", "10", "--justification", "Need to read the logs bucket.")


def test_a_request_names_its_scope_and_shows_it(cast, laptops):
    scope_set(profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    opened = laptops.rita.json(
        "request", "--profile", cast.profile.slug, "--scope", "read-only", *ASK
    )
    assert opened["scope"] == "read-only"
    assert opened["scope_content"]["policy"] == READ_ONLY
    shown = laptops.alice.ok("status", opened["id"]).stdout
    assert "scope       read-only" in shown
    profiles = laptops.rita.json("profiles")
    assert [s["name"] for s in profiles[0]["scopes"]] == ["read-only"]


def test_an_unknown_scope_is_refused_and_nothing_is_opened(cast, laptops):
    scope_set(profile_slug=cast.profile.slug, name="read-only", policy_text=json.dumps(READ_ONLY))
    done = laptops.rita.run("request", "--profile", cast.profile.slug, "--scope", "admin", *ASK)
    line = expect_error(done, 2, "invalid")
    assert "scope: profile prod-admin offers no scope 'admin' (it offers: read-only)" in line
    assert not AccessRequest.objects.exists()
