import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

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
