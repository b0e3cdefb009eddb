"""Who connects to PostgreSQL as whom in docker-compose.yml, read as an attacker who has taken a
long-running container: it must hold only the runtime role, which cannot rewrite the record
(tests/deploy/test_database_roles.py proves that on a real server)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_compose import SECRETS

ROOT = Path(__file__).resolve().parents[2]
PORTAL_SERVICES = ("web", "worker", "worker-grants", "beat")


def resolved() -> dict[str, dict[str, Any]]:
    """The services as docker-compose resolves them (anchors, merges, variables)."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose (v1 client) is needed: apt-get install docker-compose")
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={"PATH": "/usr/bin:/bin", **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return yaml.safe_load(result.stdout)["services"]


def test_the_portal_services_connect_as_the_runtime_role_only():
    services = resolved()

    for name in PORTAL_SERVICES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://breakglass_app:r@"), name
        held = " ".join(str(value) for value in environment.values())
        assert SECRETS["BREAKGLASS_DB_OWNER_PASSWORD"] + "@" not in held, name
        assert SECRETS["POSTGRES_PASSWORD"] + "@" not in held, name
        assert "BREAKGLASS_DB_OWNER_PASSWORD" not in environment, name


def test_migrations_run_as_the_owner_in_a_one_off_that_then_grants_the_runtime_role():
    services = resolved()
    migrate = services["migrate"]

    assert migrate["restart"] == "no"
    assert migrate["environment"]["DATABASE_URL"].startswith("postgres://breakglass_owner:o@")
    command = (
        " ".join(migrate["command"]) if isinstance(migrate["command"], list) else migrate["command"]
    )
    assert "manage.py migrate" in command
    assert command.index("manage.py migrate") < command.index("grant_runtime_role breakglass_app")
    for name in PORTAL_SERVICES:
        assert "migrate" not in str(services[name].get("command")), name
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_the_database_creates_both_roles_on_first_start_and_nobody_else_is_superuser():
    services = resolved()
    postgres = services["postgres"]
    # source:target[:mode], as the v1 client prints them
    volumes = {volume.split(":")[1]: volume.split(":")[0] for volume in postgres["volumes"]}

    assert postgres["environment"]["POSTGRES_USER"] == "postgres"
    assert volumes["/docker-entrypoint-initdb.d"].endswith("deploy/postgres/initdb")
    assert volumes["/breakglass/roles.sql"].endswith("deploy/postgres/roles.sql")
    script = (ROOT / "deploy/postgres/initdb/10-breakglass-roles.sh").read_text()
    assert "runtime_role=breakglass_app" in script and "owner_role=breakglass_owner" in script
    assert "-f /breakglass/roles.sql" in script
    for name, service in services.items():
        url = str((service.get("environment") or {}).get("DATABASE_URL", ""))
        assert not url.startswith("postgres://postgres:"), name
