"""Portal settings, all from environment variables (see the README's table).

Defaults are the embedded development set-up: SQLite and a filesystem Celery broker under var/,
so `make run` needs no server. Production sets BREAKGLASS_PRODUCTION=true, which refuses to start
without a real secret key and credential-encryption keys.
"""

from pathlib import Path

import dj_database_url
from django.core.management.utils import get_random_secret_key

from portal.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BREAKGLASS_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("BREAKGLASS_PRODUCTION", False)
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)


def _development_secret(file_name: str, generate) -> str:
    """A secret kept under var/ so development restarts keep sessions and ciphertexts valid."""
    path = VAR_DIR / file_name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(generate())
        path.chmod(0o600)
    return path.read_text().strip()


def _generate_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    if PRODUCTION:
        raise ImproperlyConfiguredEnv("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required")
    SECRET_KEY = _development_secret("secret.key", get_random_secret_key)

# Fernet keys, newest first; older keys still decrypt so keys can be rotated.
ENCRYPTION_KEYS = (env_str("BREAKGLASS_ENCRYPTION_KEYS") or "").replace(",", " ").split()
if not ENCRYPTION_KEYS:
    if PRODUCTION:
        raise ImproperlyConfiguredEnv(
            "BREAKGLASS_ENCRYPTION_KEYS (or BREAKGLASS_ENCRYPTION_KEYS_FILE) is required"
        )
    ENCRYPTION_KEYS = [_development_secret("encryption.key", _generate_fernet_key)]

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "approvals",
    "awsaccess",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    raise ImproperlyConfiguredEnv(f"DATABASE_URL is not a database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of one failing with
    # "database is locked" when it upgrades a read lock; the timeout covers the queueing.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Sessions end after this much inactivity (every request pushes the expiry forward).
SESSION_IDLE_MINUTES = env_int("BREAKGLASS_SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
LOGIN_URL = "login"
PUBLIC_URL = env_str("BREAKGLASS_PUBLIC_URL", "http://127.0.0.1:8000")

# --- Celery -------------------------------------------------------------------------------
_celery_dir = VAR_DIR / "celery"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("queue", "processed"):
        (_celery_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "store_processed": False,
    }
else:
    # Redis redelivers an unacknowledged message after this long; it must exceed the longest
    # ETA we schedule (a revocation at a 12 h grant's deadline) or it would be duplicated.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 13 * 3600}
CELERY_TASK_DEFAULT_QUEUE = env_str("BREAKGLASS_CELERY_QUEUE", "breakglass")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


# --- Break-glass workflow -------------------------------------------------------------------
APPROVAL_TIMEOUT_MINUTES = env_int("BREAKGLASS_APPROVAL_TIMEOUT_MINUTES", 30, minimum=1)
APPROVERS_GROUP = env_str("BREAKGLASS_APPROVERS_GROUP", "approvers")
AUDITORS_GROUP = env_str("BREAKGLASS_AUDITORS_GROUP", "auditors")

# django-otp: each failed code doubles the wait before the next attempt (1 s, 2 s, 4 s, ...).
OTP_TOTP_THROTTLE_FACTOR = env_int("BREAKGLASS_OTP_THROTTLE_FACTOR", 1, minimum=1)
OTP_TOTP_ISSUER = env_str("BREAKGLASS_OTP_ISSUER", "Break-glass portal")

# Break-glass timing: activation retries transient AWS errors for this long, then fails; a
# revocation later than the deadline by more than the overdue bound raises an alarm.
ACTIVATION_RETRY_SECONDS = env_int("BREAKGLASS_ACTIVATION_RETRY_SECONDS", 60, minimum=1)
ACTIVATION_ORPHAN_SECONDS = env_int("BREAKGLASS_ACTIVATION_ORPHAN_SECONDS", 120, minimum=5)
SWEEP_INTERVAL_SECONDS = env_int("BREAKGLASS_SWEEP_INTERVAL_SECONDS", 10, minimum=1)
REVOCATION_OVERDUE_SECONDS = env_int("BREAKGLASS_REVOCATION_OVERDUE_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "approvals.sweep", "schedule": float(SWEEP_INTERVAL_SECONDS)},
}

# --- AWS ------------------------------------------------------------------------------------
# Unset endpoint = real AWS through the standard boto3 credential chain; `make run` points it at
# the local sandbox. Key files are JSON: {"access_key_id": ..., "secret_access_key": ...};
# the principal file maps principal ARN -> such keys.
AWS_ENDPOINT_URL = env_str("BREAKGLASS_AWS_ENDPOINT_URL")
AWS_BROKER_CREDENTIALS_FILE = env_str("BREAKGLASS_AWS_BROKER_CREDENTIALS_FILE")
AWS_PROVISIONER_CREDENTIALS_FILE = env_str("BREAKGLASS_AWS_PROVISIONER_CREDENTIALS_FILE")
AWS_PRINCIPAL_CREDENTIALS_FILE = env_str("BREAKGLASS_AWS_PRINCIPAL_CREDENTIALS_FILE")
AWS_PROPAGATION_TIMEOUT_SECONDS = env_int(
    "BREAKGLASS_AWS_PROPAGATION_TIMEOUT_SECONDS", 15, minimum=0
)
AWS_CONNECT_TIMEOUT_SECONDS = env_int("BREAKGLASS_AWS_CONNECT_TIMEOUT_SECONDS", 3, minimum=1)
AWS_READ_TIMEOUT_SECONDS = env_int("BREAKGLASS_AWS_READ_TIMEOUT_SECONDS", 10, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("BREAKGLASS_LOG_LEVEL", "INFO")},
}
