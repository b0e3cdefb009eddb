"""The client installs on a laptop without the server: no Django, Celery or boto3."""

import subprocess
import sys
import tomllib
from pathlib import Path

SERVER_ONLY = {"django", "rest_framework", "celery", "boto3", "botocore", "moto", "psycopg"}
CLI = Path(__file__).resolve().parents[2] / "cli"


def test_the_client_package_depends_on_no_server_library():
    project = tomllib.loads((CLI / "pyproject.toml").read_text())["project"]
    names = {
        d.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for d in project["dependencies"]
    }

    assert names.isdisjoint(SERVER_ONLY), names
    assert project["scripts"] == {"breakglass": "breakglass_cli.main:main"}


def test_running_every_command_module_imports_no_server_library():
    forbidden = sorted(SERVER_ONLY | {"approvals", "portal", "awsaccess"})
    probe = (
        "import sys, breakglass_cli.main\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        f"print(sorted(loaded & set({forbidden!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=CLI
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
