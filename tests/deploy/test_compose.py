import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "DJANGO_SECRET_KEY": "k",
    "BREAKGLASS_ENCRYPTION_KEYS": "e",
    "BREAKGLASS_SIGNING_KEY": "s",
    "POSTGRES_PASSWORD": "p",
    "BREAKGLASS_DB_OWNER_PASSWORD": "o",
    "BREAKGLASS_DB_RUNTIME_PASSWORD": "r",
}

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="the docker-compose client is not installed"
)


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_compose_file_validates_with_the_documented_secrets():
    result = compose_config(SECRETS)

    assert result.returncode == 0, result.stderr
    assert "http://sandbox:5055" in result.stdout
    for value in SECRETS.values():
        assert f"={value}\n" not in (ROOT / "docker-compose.yml").read_text()


def test_it_refuses_to_start_without_a_secret_key():
    result = compose_config({k: v for k, v in SECRETS.items() if k != "DJANGO_SECRET_KEY"})

    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY" in result.stderr


def test_one_empty_variable_switches_to_real_aws():
    result = compose_config({**SECRETS, "BREAKGLASS_AWS_ENDPOINT_URL": ""})

    assert result.returncode == 0, result.stderr
    assert (
        "sandbox:5055" not in result.stdout.split("BREAKGLASS_AWS_ENDPOINT_URL")[1].splitlines()[0]
    )
