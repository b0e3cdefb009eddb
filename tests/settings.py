"""Test settings: real PostgreSQL and Redis when reachable (always, when CI requires them).

BREAKGLASS_REQUIRE_SERVICES=true (set by .ci/run) turns a missing service into a hard failure
instead of the laptop fallback to SQLite and the filesystem broker.
"""

import os
import socket
import tempfile
from urllib.parse import urlparse

from portal.env import env_bool


class MissingTestService(RuntimeError):
    pass


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


REQUIRE_SERVICES = env_bool("BREAKGLASS_REQUIRE_SERVICES", False)
_database_url = os.environ.get(
    "BREAKGLASS_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)
_broker_url = os.environ.get("BREAKGLASS_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
_var_dir = os.environ.get("BREAKGLASS_TEST_VAR_DIR") or tempfile.mkdtemp(prefix="breakglass-test-")
os.environ["BREAKGLASS_TEST_VAR_DIR"] = _var_dir  # worker processes started by tests share it
os.environ["BREAKGLASS_VAR_DIR"] = _var_dir

# Worker and beat processes that tests start are given the exact database and broker (see
# tests/processes.py), so they skip the probing.
if not env_bool("BREAKGLASS_TEST_CHILD", False):
    for name, url, port in (("PostgreSQL", _database_url, 5432), ("Redis", _broker_url, 6379)):
        if not _reachable(url, port) and REQUIRE_SERVICES:
            raise MissingTestService(f"{name} is required for this run but {url} is unreachable")

    if _reachable(_database_url, 5432):
        os.environ["DATABASE_URL"] = _database_url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{_var_dir}/test.sqlite3"
    if _reachable(_broker_url, 6379):
        os.environ["CELERY_BROKER_URL"] = _broker_url
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("BREAKGLASS_CELERY_QUEUE", f"breakglass-test-{os.getpid()}")
# The webhook receivers tests start listen on loopback over http:// (also in worker children).
os.environ.setdefault("BREAKGLASS_WEBHOOK_ALLOW_HTTP_LOOPBACK", "true")

from portal.settings import *  # noqa: E402, F403

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory, so worker processes started by tests see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": f"{_var_dir}/test-db.sqlite3"}  # noqa: F405
else:
    # One test database per pytest run, so two runs on one machine never drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_breakglass_{os.getpid()}"}  # noqa: F405

# One cache namespace per pytest run (its worker and beat children inherit it): the watch's poll
# lock and the throttles live there, and two runs on one machine must not share them.
os.environ.setdefault("BREAKGLASS_TEST_CACHE_PREFIX", f"breakglass-test-{os.getpid()}")
if "KEY_PREFIX" in CACHES["default"]:  # noqa: F405
    CACHES["default"]["KEY_PREFIX"] = os.environ["BREAKGLASS_TEST_CACHE_PREFIX"]  # noqa: F405

# Hashing passwords slowly protects real users, not test fixtures.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
