"""Portal settings, all from environment variables (see the README's table).

Defaults are the embedded development set-up: SQLite and a filesystem Celery broker under var/,
so `make run` needs no server. Production sets BREAKGLASS_PRODUCTION=true, which refuses to start
without a real secret key and credential-encryption keys.
"""

import ipaddress
from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

from portal.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_int,
    env_list,
    env_str,
)
from portal.settings_security import (
    encryption_keys_setting,
    env_signing_keys,
    secret_key_setting,
    signing_keys_setting,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BREAKGLASS_VAR_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("BREAKGLASS_PRODUCTION", False)
# Debug pages show code, settings and the request to whoever triggers an error: off unless asked
# for (`make run` asks), and never in production.
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfiguredEnv(
        "DJANGO_DEBUG=true is refused when BREAKGLASS_PRODUCTION=true: debug pages would show "
        "code, settings and requests to anyone who triggers an error"
    )
# Debug pages and error reports also hide the passwords inside URLs (DATABASE_URL, the broker).
DEFAULT_EXCEPTION_REPORTER_FILTER = "portal.error_reports.UrlPasswordCleansingFilter"

# The portal's own keys (portal/settings_security.py): required in production, generated under
# var/ in development.
SECRET_KEY = secret_key_setting(PRODUCTION, VAR_DIR)
ENCRYPTION_KEYS = encryption_keys_setting(PRODUCTION, VAR_DIR)
SIGNING_KEYS = signing_keys_setting(PRODUCTION, VAR_DIR)
SIGNING_PUBLIC_KEYS = env_signing_keys("BREAKGLASS_SIGNING_PUBLIC_KEYS")

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
    "portal.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "approvals.web.middleware.AdministrationActorMiddleware",
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
# Development serves straight from static/ (debug or not), with no collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Sessions end after this much inactivity (every request pushes the expiry forward).
SESSION_IDLE_MINUTES = env_int("BREAKGLASS_SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
LOGIN_URL = "login"
# Failed sign-ins of one username from one address before each further failure makes that
# username wait from that address only (an address trying any names gets four times as many):
# a growing delay, never a lock-out someone elsewhere can aim at an approver.
SIGNIN_MAX_FAILURES = env_int("BREAKGLASS_SIGNIN_MAX_FAILURES", 5, minimum=1)
SIGNIN_FAILURE_WINDOW_MINUTES = env_int("BREAKGLASS_SIGNIN_FAILURE_WINDOW_MINUTES", 15, minimum=1)
# The first delay; it doubles with every further failure, up to the window.
SIGNIN_DELAY_SECONDS = env_int("BREAKGLASS_SIGNIN_DELAY_SECONDS", 30, minimum=1)
# How many reverse proxies of ours stand in front of the portal (X-Forwarded-For hops to trust).
TRUSTED_PROXY_COUNT = env_int("BREAKGLASS_TRUSTED_PROXY_COUNT", 0, minimum=0)
PUBLIC_URL = env_str("BREAKGLASS_PUBLIC_URL", "http://127.0.0.1:8000")

# --- Celery -------------------------------------------------------------------------------
_celery_dir = VAR_DIR / "celery"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("queue", "processed", "control"):
        (_celery_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
        # The worker looks for work this often (kombu's default is 1 s: a second per message).
        "polling_interval": env_int("BREAKGLASS_BROKER_POLL_MS", 50, minimum=1) / 1000,
    }
    # The same transport, serving the queues in the order the worker consumes them (grants first).
    CELERY_BROKER_TRANSPORT = "portal.broker:PriorityFilesystemTransport"
else:
    # Redis redelivers an unacknowledged message after this long; it must exceed the longest
    # ETA we schedule (a revocation at a 12 h grant's deadline) or it would be duplicated.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 13 * 3600,
        # BRPOP on the queues in the order the worker consumes them (grants first), not in turn.
        "queue_order_strategy": "priority",
    }
CELERY_TASK_DEFAULT_QUEUE = env_str("BREAKGLASS_CELERY_QUEUE", "breakglass")
# Activations and revocations have a queue of their own, which every worker consumes first: a
# grant never waits behind notices, webhooks or the watch (see portal/broker.py).
CELERY_GRANTS_QUEUE = env_str(
    "BREAKGLASS_CELERY_GRANTS_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-grants"
)
if CELERY_GRANTS_QUEUE == CELERY_TASK_DEFAULT_QUEUE:
    raise ImproperlyConfiguredEnv("BREAKGLASS_CELERY_GRANTS_QUEUE must differ from the main queue")
# Each queue on its own exchange and key, so no message is ever routed to both.
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name), routing_key=name)
    for name in (CELERY_GRANTS_QUEUE, CELERY_TASK_DEFAULT_QUEUE)
)
CELERY_TASK_ROUTES = {
    "approvals.activate_request": {"queue": CELERY_GRANTS_QUEUE},
    "approvals.revoke_request": {"queue": CELERY_GRANTS_QUEUE},
    "approvals.extension_apply": {"queue": CELERY_GRANTS_QUEUE},
    "approvals.extensions_time_out": {"queue": CELERY_GRANTS_QUEUE},
}
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
# An extension waits this long for its signatures at most, and never past the grant's end.
EXTENSION_APPROVAL_MINUTES = env_int("BREAKGLASS_EXTENSION_APPROVAL_MINUTES", 15, minimum=1)
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

# --- REST API, webhooks, health -------------------------------------------------------------
_RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")


def _env_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as 120/min; anything else stops start-up."""
    value = env_str(name, default) or default
    count, _, period = value.partition("/")
    if not (count.isdigit() and int(count) > 0 and period in _RATE_PERIODS):
        raise ImproperlyConfiguredEnv(
            f"{name} must look like 120/min (a count, then /s, /min, /hour or /day), not {value!r}"
        )
    return value


# Throttles count per personal token, per integration key and per browser-session user.
API_THROTTLE_RATES = {
    "token": _env_rate("BREAKGLASS_API_TOKEN_RATE", "120/min"),
    "integration": _env_rate("BREAKGLASS_API_INTEGRATION_RATE", "600/min"),
    "session": _env_rate("BREAKGLASS_API_SESSION_RATE", "120/min"),
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "approvals.api.authentication.BearerAuthentication",
        "approvals.api.authentication.VerifiedSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["approvals.api.throttling.CallerRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "approvals.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Break-glass portal API",
    "DESCRIPTION": (
        "Open, follow and audit break-glass requests from ticketing and incident tools. "
        "Authenticate with `Authorization: Bearer bgp_…` (personal token) or `bgi_…` "
        "(integration key). Approving, rejecting, revoking and reading credentials also need "
        "the person's current TOTP code in the body."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Throttle counters must be shared by every web process: Redis (BREAKGLASS_CACHE_URL, else the
# broker when it is Redis), otherwise the database table made by `manage.py createcachetable`.
CACHE_URL = env_str("BREAKGLASS_CACHE_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "db://"
)
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "breakglass-cache",
        }
    }
elif CACHE_URL == "db://":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "breakglass_cache",
        }
    }
else:
    raise ImproperlyConfiguredEnv(
        f"BREAKGLASS_CACHE_URL must be redis://…, rediss://… or db://, not {CACHE_URL!r}"
    )

WEBHOOK_TIMEOUT_SECONDS = env_int("BREAKGLASS_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Webhooks go to public https:// addresses only. Development (debug, as under `make run`) may
# also post http:// to loopback; networks listed here are allowed even when not public.
WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("BREAKGLASS_WEBHOOK_ALLOW_HTTP_LOOPBACK", DEBUG)
WEBHOOK_ALLOWED_NETWORKS = env_list("BREAKGLASS_WEBHOOK_ALLOWED_NETWORKS", [])
for _network in WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfiguredEnv(
            f"BREAKGLASS_WEBHOOK_ALLOWED_NETWORKS: {_network!r} is not a network like 10.1.0.0/16"
        ) from None
# Retries wait BACKOFF, then twice as long each time (at most 10 min apart), until
# RETRY_SECONDS after the event.
WEBHOOK_BACKOFF_SECONDS = env_int("BREAKGLASS_WEBHOOK_BACKOFF_SECONDS", 10, minimum=1)
WEBHOOK_RETRY_SECONDS = env_int("BREAKGLASS_WEBHOOK_RETRY_SECONDS", 6 * 3600, minimum=1)

# /healthz calls a component dead when its heartbeat is older than this.
WORKER_HEARTBEAT_SECONDS = env_int("BREAKGLASS_WORKER_HEARTBEAT_SECONDS", 15, minimum=1)
HEALTH_STALE_SECONDS = env_int("BREAKGLASS_HEALTH_STALE_SECONDS", 60, minimum=1)

# --- Watching the glass -----------------------------------------------------------------------
# The watcher long-polls every profile's watch queue for WAIT seconds, every INTERVAL seconds;
# the sweeper raises an alarm when no complete poll happened for STALE seconds.
WATCH_INTERVAL_SECONDS = env_int("BREAKGLASS_WATCH_INTERVAL_SECONDS", 2, minimum=1)
WATCH_WAIT_SECONDS = env_int("BREAKGLASS_WATCH_WAIT_SECONDS", 1, minimum=0)
if WATCH_WAIT_SECONDS > 20:
    raise ImproperlyConfiguredEnv("BREAKGLASS_WATCH_WAIT_SECONDS must be at most 20 (SQS limit)")
WATCH_VISIBILITY_TIMEOUT_SECONDS = env_int(
    "BREAKGLASS_WATCH_VISIBILITY_TIMEOUT_SECONDS", 30, minimum=5
)
WATCH_STALE_SECONDS = env_int("BREAKGLASS_WATCH_STALE_SECONDS", 60, minimum=5)
GUARD_INTERVAL_SECONDS = env_int("BREAKGLASS_GUARD_INTERVAL_SECONDS", 300, minimum=10)
# The activity backstop reads CloudTrail's event history (LookupEvents) every BACKSTOP seconds
# for calls the watch queue never received, up to SETTLE seconds ago (the history lags the calls:
# up to 15 min on AWS), at most MAX_PAGES pages of 50 events per region and run, PACE ms apart
# (AWS allows about two LookupEvents a second). A profile's first look reaches LOOKBACK back.
ACTIVITY_BACKSTOP_SECONDS = env_int("BREAKGLASS_ACTIVITY_BACKSTOP_SECONDS", 60, minimum=1)
ACTIVITY_BACKSTOP_SETTLE_SECONDS = env_int(
    "BREAKGLASS_ACTIVITY_BACKSTOP_SETTLE_SECONDS", 900, minimum=0
)
ACTIVITY_BACKSTOP_LOOKBACK_SECONDS = env_int(
    "BREAKGLASS_ACTIVITY_BACKSTOP_LOOKBACK_SECONDS", 3600, minimum=0
)
ACTIVITY_BACKSTOP_MAX_PAGES = env_int("BREAKGLASS_ACTIVITY_BACKSTOP_MAX_PAGES", 20, minimum=1)
ACTIVITY_BACKSTOP_PACE_MS = env_int("BREAKGLASS_ACTIVITY_BACKSTOP_PACE_MS", 500, minimum=0)

# --- Signed timeline checkpoints ---------------------------------------------------------------
# Every INTERVAL seconds (when the record has grown) and whenever a request ends, the worker signs
# a checkpoint of every chain head and publishes it to the S3 bucket below, which must have Object
# Lock in COMPLIANCE mode (`manage.py provision_anchor` makes it), and to the webhooks.
# Without a bucket, checkpoints are stored and sent to the webhooks only.
CHECKPOINT_INTERVAL_SECONDS = env_int("BREAKGLASS_CHECKPOINT_INTERVAL_SECONDS", 300, minimum=10)
ANCHOR_BUCKET = env_str("BREAKGLASS_ANCHOR_BUCKET", "")
ANCHOR_PREFIX = env_str("BREAKGLASS_ANCHOR_PREFIX", "breakglass/")
ANCHOR_REGION = env_str("BREAKGLASS_ANCHOR_REGION", "eu-west-1")
ANCHOR_RETENTION_DAYS = env_int("BREAKGLASS_ANCHOR_RETENTION_DAYS", 400, minimum=1)

# --- Celery beat: everything periodic, in one place ----------------------------------------------
# Beat only sends these messages; the worker runs them (so beat holds no AWS keys). A periodic
# message that waited in the queue longer than its period expires: the next one supersedes it.
# The sweeper's messages never expire, since a late sweep still has deadlines to enforce.
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "approvals.sweep", "schedule": float(SWEEP_INTERVAL_SECONDS)},
    "worker-heartbeat": {
        "task": "approvals.worker_heartbeat",
        "schedule": float(WORKER_HEARTBEAT_SECONDS),
        "options": {"expires": float(WORKER_HEARTBEAT_SECONDS)},
    },
    "watch-poll": {
        "task": "approvals.watch_poll",
        "schedule": float(WATCH_INTERVAL_SECONDS),
        "options": {"expires": float(WATCH_INTERVAL_SECONDS)},
    },
    "guard-check": {
        "task": "approvals.guard_check",
        "schedule": float(GUARD_INTERVAL_SECONDS),
        "options": {"expires": float(GUARD_INTERVAL_SECONDS)},
    },
    "activity-backstop": {
        "task": "approvals.activity_backstop",
        "schedule": float(ACTIVITY_BACKSTOP_SECONDS),
        "options": {"expires": float(ACTIVITY_BACKSTOP_SECONDS)},
    },
    "timeline-checkpoint": {
        "task": "approvals.timeline_checkpoint",
        "schedule": float(CHECKPOINT_INTERVAL_SECONDS),
        "options": {"expires": float(CHECKPOINT_INTERVAL_SECONDS)},
    },
    # Sign-in counters older than the throttling window hold nothing any more.
    "signin-throttles-purge": {
        "task": "approvals.signin_throttles_purge",
        "schedule": SIGNIN_FAILURE_WINDOW_MINUTES * 60.0,
        "options": {"expires": SIGNIN_FAILURE_WINDOW_MINUTES * 60.0},
    },
}

# --- Notifications ----------------------------------------------------------------------------
# Alarms always go to the security channel; per-profile channels are set on the access profile.
SECURITY_EMAILS = env_list("BREAKGLASS_SECURITY_EMAILS", [])
SECURITY_CHAT_WEBHOOK_URL = env_str("BREAKGLASS_SECURITY_CHAT_WEBHOOK_URL", "")
if SECURITY_CHAT_WEBHOOK_URL and not SECURITY_CHAT_WEBHOOK_URL.startswith(("https://", "http://")):
    raise ImproperlyConfiguredEnv("BREAKGLASS_SECURITY_CHAT_WEBHOOK_URL must be an http(s) URL")
NOTIFY_TIMEOUT_SECONDS = env_int("BREAKGLASS_NOTIFY_TIMEOUT_SECONDS", 10, minimum=1)
NOTIFY_MAX_ATTEMPTS = env_int("BREAKGLASS_NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
# Retries wait RETRY seconds, then twice as long each time (at most 10 min apart).
NOTIFY_RETRY_SECONDS = env_int("BREAKGLASS_NOTIFY_RETRY_SECONDS", 10, minimum=1)

# SMTP in production; development writes each email as a file under var/mail/.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfiguredEnv("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "break-glass@localhost")

# Prometheus scrapes /metrics with this bearer token; unset = /metrics answers 404.
METRICS_TOKEN = env_str("BREAKGLASS_METRICS_TOKEN")

LOG_FORMAT = env_str("BREAKGLASS_LOG_FORMAT", "json" if PRODUCTION else "text")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfiguredEnv(f"BREAKGLASS_LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "portal.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("BREAKGLASS_LOG_LEVEL", "INFO")},
}

# --- Production hardening (python manage.py check --deploy is clean with these) ------------------
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    # TLS ends at the proxy in front of gunicorn, which must set X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("BREAKGLASS_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("BREAKGLASS_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("BREAKGLASS_HSTS_PRELOAD", True)
