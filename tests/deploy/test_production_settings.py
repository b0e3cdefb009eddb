import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from approvals.signatures import key_generate

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BREAKGLASS_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def production_env() -> dict[str, str]:
    return {
        "BREAKGLASS_PRODUCTION": "true",
        "DJANGO_SECRET_KEY": "x" * 30 + "a-long-and-random-production-secret-key",
        "BREAKGLASS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "BREAKGLASS_SIGNING_KEY": key_generate(),
        "DJANGO_ALLOWED_HOSTS": "breakglass.example.com",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://breakglass.example.com",
    }


def test_check_deploy_is_clean_under_the_documented_production_variables(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(), tmp_path=tmp_path
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in production_env().items() if k != "DJANGO_SECRET_KEY"}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required" in result.stderr


def test_production_refuses_to_start_without_a_credential_encryption_key(tmp_path):
    env = {k: v for k, v in production_env().items() if k != "BREAKGLASS_ENCRYPTION_KEYS"}

    result = manage("check", env=env, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "BREAKGLASS_ENCRYPTION_KEYS" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    env = production_env()
    key_file = tmp_path / "secret"
    key_file.write_text(env.pop("DJANGO_SECRET_KEY"))
    env["DJANGO_SECRET_KEY_FILE"] = str(key_file)

    assert manage("check", env=env, tmp_path=tmp_path).returncode == 0


def test_a_malformed_setting_stops_start_up_with_its_name(tmp_path):
    result = manage("check", env={"BREAKGLASS_SWEEP_INTERVAL_SECONDS": "ten"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "BREAKGLASS_SWEEP_INTERVAL_SECONDS must be a whole number, not 'ten'" in result.stderr


PRINT_DEBUG = "from django.conf import settings; print('DEBUG', settings.DEBUG)"


def test_debug_is_off_unless_asked_for(tmp_path):
    result = manage("shell", "-c", PRINT_DEBUG, env={}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "DEBUG False" in result.stdout


def test_make_run_asks_for_development_mode_itself(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "portal.devrun", "manage", "shell", "-c", PRINT_DEBUG],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BREAKGLASS_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "DEBUG True" in result.stdout


def test_production_refuses_debug_mode(tmp_path):
    result = manage("check", env={**production_env(), "DJANGO_DEBUG": "true"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "DJANGO_DEBUG=true is refused when BREAKGLASS_PRODUCTION=true" in result.stderr


def test_a_malformed_encryption_key_stops_check_naming_the_variable_not_the_key(tmp_path):
    good = Fernet.generate_key().decode()
    malformed = "c2hvcnQta2V5LWxlYWtlZC1pbi1hLWxvZw"
    for env in (
        {"BREAKGLASS_ENCRYPTION_KEYS": f"{good},{malformed}"},
        {**production_env(), "BREAKGLASS_ENCRYPTION_KEYS": f"{good} {malformed}"},
    ):
        result = manage("check", env=env, tmp_path=tmp_path)

        assert result.returncode != 0
        assert "BREAKGLASS_ENCRYPTION_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
        assert "ImproperlyConfigured" in result.stderr
        assert malformed not in result.stderr + result.stdout
