"""Settings for the Zoom token broker, read from the environment through django-environ.

The defaults run the broker on one machine with nothing installed: SQLite under var/ and
Celery on kombu's filesystem transport. Production sets DATABASE_URL, REDIS_URL and real
secrets; with DEBUG off the process refuses to start on development secrets.
"""

import sys
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from brokerproject.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development-only secrets. Published in this file on purpose: production refuses them.
DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production-0123456789"
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LWluc2VjdXJlLWZpZWxkLWtleS1ub3QtNC11c2U="

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY if DEBUG else "")
FIELD_ENCRYPTION_KEY = [
    key.strip()
    for key in env.str("FIELD_ENCRYPTION_KEY", default=DEV_FIELD_ENCRYPTION_KEY if DEBUG else "").split(",")
    if key.strip()
]


def _refuse_development_secrets() -> None:
    problems = []
    if not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("SECRET_KEY is missing, too short or the development key")
    if not FIELD_ENCRYPTION_KEY or DEV_FIELD_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEY:
        problems.append("FIELD_ENCRYPTION_KEY is missing or the development key")
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with DEBUG off: "
            + "; ".join(problems)
            + ". Generate keys as the README says, or set DEBUG=true for development."
        )


if not DEBUG:
    _refuse_development_secrets()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The address Recall and Zoom reach the broker at. Every callback URL is built from it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "brokerproject.apps.BrokerAdminConfig",  # django.contrib.admin with the overview as its home
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "encrypted_model_fields",
    "axes",
    "accounts",
    "zoomauth",
    "recallbots",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A process with the wrong key serves nothing that needs it (token callbacks included).
    "accounts.middleware.EncryptionKeyMiddleware",
    # Token callbacks leave here for their view: nothing below is work a callback uses.
    "zoomauth.lane.CallbackLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "brokerproject.urls"
WSGI_APPLICATION = "brokerproject.wsgi.application"
ASGI_APPLICATION = "brokerproject.asgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'broker.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# PostgreSQL: a pool of connections per process (psycopg_pool), shared by its threads, instead
# of one persistent connection per thread. Token callbacks hand theirs back before waiting on
# Zoom, so a web process with many threads needs few connections (DB_POOL_MAX_SIZE each).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django must not as well
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": 5,  # wait this long for a free connection, then fail (a callback answers 503)
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file. WAL lets readers run beside the writer; IMMEDIATE
    # transactions take the write lock at BEGIN, so a transaction that read first never fails
    # with "database is locked" when it upgrades to a write (a deferred upgrade cannot wait);
    # the timeout makes a writer wait for the other instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"

# Sign-in throttling (django-axes): after SIGNIN_FAILURE_LIMIT wrong passwords from one address,
# or for one username, sign-in is refused with 429 for SIGNIN_LOCKOUT_MINUTES. Staff can lift a
# lockout early in the admin (Axes → Access attempts) or with `manage.py axes_reset`.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("SIGNIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGNIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "brokerproject.throttling.client_address"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "zoomauth:home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

FORMS_URLFIELD_ASSUME_HTTPS = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed, compressed files once `collectstatic` has run (the Docker image does), served with a
# year's cache lifetime (WhiteNoise does that for hashed names). `collectstatic` itself uses that
# storage, which writes the manifest. Without the manifest (DEBUG off on a machine where it never
# ran), pages still render: WhiteNoise serves the apps' files as they are instead of every page
# failing on "Missing staticfiles manifest entry".
STATIC_MANIFEST = STATIC_ROOT / "staticfiles.json"
_COLLECTING_STATIC = sys.argv[1:2] == ["collectstatic"]
USE_STATIC_MANIFEST = not DEBUG and (STATIC_MANIFEST.exists() or _COLLECTING_STATIC)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if USE_STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not USE_STATIC_MANIFEST

# --- Redis, cache and Celery -------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    # Shared by web, worker and beat on one machine without a server.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# With no broker configured, kombu's filesystem transport carries tasks between processes on
# one machine through files under var/broker/ (see the README for why).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_FOLDER.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | int | float] = {
        "data_folder_in": str(BROKER_FOLDER),
        "data_folder_out": str(BROKER_FOLDER),
        # Kombu's default is ./control in the working directory: keep it under var/ too.
        "control_folder": str(BROKER_FOLDER / "control"),
    }
else:
    # Fail fast when Redis is away: callers that enqueue (webhook intake) must not hang.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A warm shutdown (SIGTERM) waits for running tasks; a cold one (SIGQUIT, a second Ctrl-C) first
# gives them this long (Celery's soft shutdown), so a refresh under way still finishes and stores.
# Set below, once ZOOM_REFRESH_TIMEOUT is read. compose's stop_grace_period must be longer.
# Queues by job, each with workers of its own (docker compose, scripts/run-dev): a slow Zoom holds
# only the refresh workers, a throttling Recall only the recall workers, a dead customer endpoint
# only the customer-events workers. Zoom's events are forwarded on their own queue whatever the
# others are doing. Everything else (beat's fan-outs and sweeps) goes to "celery".
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "zoomauth.tasks.connection_refresh": {"queue": "refresh"},
    "zoomauth.tasks.token_revoke_at_zoom": {"queue": "refresh"},
    "webhooks.tasks.deliveries_received": {"queue": "zoom-events"},
    "webhooks.tasks.delivery_attempt": {"queue": "zoom-events"},
    "webhooks.tasks.event_handle_locally": {"queue": "zoom-events"},
    "webhooks.tasks.event_delivery_attempt": {"queue": "customer-events"},
    "recallbots.tasks.bot_create_at_recall": {"queue": "recall"},
    "recallbots.tasks.bot_release_waiting": {"queue": "recall"},
    "recallbots.tasks.bot_hand_off": {"queue": "recall"},
    "recallbots.tasks.credential_create_customer_managed": {"queue": "recall"},
    "recallbots.tasks.credential_delete_for_connection": {"queue": "recall"},
}
CELERY_QUEUES_BY_JOB = ("celery", "refresh", "zoom-events", "customer-events", "recall")
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Beat intervals (seconds). The defaults suit production; the end-to-end tests shorten them.
BEAT_HEARTBEAT_INTERVAL = env.int("BEAT_HEARTBEAT_INTERVAL_SECONDS", default=30)
BEAT_REFRESH_INTERVAL = env.int("BEAT_REFRESH_INTERVAL_SECONDS", default=60)
BEAT_SWEEP_INTERVAL = env.int("BEAT_SWEEP_INTERVAL_SECONDS", default=60)
# How old the beat heartbeat may be before /readyz reports beat as down.
BEAT_HEARTBEAT_MAX_AGE = timedelta(seconds=env.int("BEAT_HEARTBEAT_MAX_AGE", default=180))
# The schedule lives in settings so that every deployment runs the same one. Run exactly one beat
# process; every task it sends is idempotent, so a duplicate tick does no harm.
_EVERY_SWEEP = timedelta(seconds=BEAT_SWEEP_INTERVAL)
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": schedule}
    for name, task, schedule in (
        ("heartbeat", "accounts.tasks.heartbeat_record", timedelta(seconds=BEAT_HEARTBEAT_INTERVAL)),
        ("refresh-due-connections", "zoomauth.tasks.connections_refresh_due", timedelta(seconds=BEAT_REFRESH_INTERVAL)),
        ("prune-callback-logs", "zoomauth.tasks.callback_logs_prune", crontab(minute=17, hour=3)),
        ("sweep-webhook-deliveries", "webhooks.tasks.deliveries_sweep", _EVERY_SWEEP),
        ("send-due-events", "webhooks.tasks.event_deliveries_due", _EVERY_SWEEP),
        ("prune-meeting-activity", "zoomauth.tasks.meeting_activity_prune", crontab(minute=37)),
        ("prune-webhook-deliveries", "webhooks.tasks.deliveries_prune", crontab(minute=47)),
        ("expire-waiting-bots", "recallbots.tasks.bots_waiting_expired", _EVERY_SWEEP),
        ("launch-queued-bots", "recallbots.tasks.bots_queued_due", _EVERY_SWEEP),
        ("hand-off-removed-bots", "recallbots.tasks.bots_hand_off_due", _EVERY_SWEEP),
        ("sync-recall-credentials", "recallbots.tasks.credentials_sync_statuses", timedelta(minutes=15)),
    )
}

# --- External services ---------------------------------------------------------------------
ZOOM_OAUTH_BASE_URL = env.str("ZOOM_OAUTH_BASE_URL", default="https://zoom.us").rstrip("/")
ZOOM_API_BASE_URL = env.str("ZOOM_API_BASE_URL", default="https://api.zoom.us/v2").rstrip("/")
ZOOM_HTTP_TIMEOUT = env.float("ZOOM_HTTP_TIMEOUT", default=3.0)
# A refresh (POST /oauth/token) is never cut short by a caller's budget: Zoom rotates the refresh
# token as it answers, so one given up early may have spent the only refresh token there is. The
# timeout is one total deadline for the whole request (name resolution, connect, TLS, every read,
# the body), and the refresh lease outlasts it by the margin (time to store Zoom's answer).
ZOOM_REFRESH_TIMEOUT = env.float("ZOOM_REFRESH_TIMEOUT", default=60.0)
ZOOM_REFRESH_LEASE_MARGIN_SECONDS = env.float("ZOOM_REFRESH_LEASE_MARGIN_SECONDS", default=15.0)
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = ZOOM_REFRESH_TIMEOUT + ZOOM_REFRESH_LEASE_MARGIN_SECONDS

RECALL_REGIONS = {
    "us-west-2": "https://us-west-2.recall.ai",
    "us-east-1": "https://us-east-1.recall.ai",
    "api": "https://api.recall.ai",
    "eu-central-1": "https://eu-central-1.recall.ai",
    "ap-northeast-1": "https://ap-northeast-1.recall.ai",
}
RECALL_REGION = env.str("RECALL_REGION", default="us-east-1")
if RECALL_REGION not in RECALL_REGIONS:
    raise ImproperlyConfigured(f"RECALL_REGION must be one of {', '.join(RECALL_REGIONS)}; got {RECALL_REGION!r}.")
RECALL_API_BASE_URL = env.str("RECALL_API_BASE_URL", default=RECALL_REGIONS[RECALL_REGION]).rstrip("/")
RECALL_API_KEY = env.str("RECALL_API_KEY", default="")
RECALL_HTTP_TIMEOUT = env.float("RECALL_HTTP_TIMEOUT", default=10.0)
# Recall's bot list may not show a bot for this long after its create: after an ambiguous create
# (timeout, dropped answer) no second POST until the list has shown nothing for this long.
RECALL_BOT_LIST_LAG = timedelta(seconds=env.int("RECALL_BOT_LIST_LAG_SECONDS", default=120))
# Workspace verification secret (whsec_...): Recall signs webhooks and token GETs with it.
RECALL_VERIFICATION_SECRET = env.str("RECALL_VERIFICATION_SECRET", default="")
# When a verification secret is set: still accept unsigned token GETs that carry a good secret.
RECALL_ACCEPT_UNSIGNED_CALLBACKS = env.bool("RECALL_ACCEPT_UNSIGNED_CALLBACKS", default=True)

# Bearer token for GET /metrics (Prometheus); unset: /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Hosts a connect session's return_url may point at (the customer's app), comma-separated.
CONNECT_RETURN_URL_HOSTS = env.list("CONNECT_RETURN_URL_HOSTS", default=[])

# --- Token policy ---------------------------------------------------------------------------
# Refresh access tokens that have less than this left when beat looks at them.
ZOOM_REFRESH_WINDOW = timedelta(seconds=env.int("ZOOM_REFRESH_WINDOW_SECONDS", default=600))
# Refresh connections whose refresh token has not been used for this long (keep-alive).
ZOOM_REFRESH_KEEPALIVE = timedelta(days=env.int("ZOOM_REFRESH_KEEPALIVE_DAYS", default=7))
# A bot's own token URLs work until the bot ends plus this grace, and never beyond the cap.
BOT_URL_GRACE = timedelta(seconds=env.int("BOT_URL_GRACE_SECONDS", default=300))
BOT_URL_MAX_LIFETIME = timedelta(hours=env.int("BOT_URL_MAX_HOURS", default=24))
# A bot's join_at may lie at most this far ahead (and not in the past beyond a few minutes).
BOT_JOIN_AT_MAX_AHEAD = timedelta(days=env.int("BOT_JOIN_AT_MAX_DAYS", default=30))
# The access-token callback always returns a token with at least this much life left.
ACCESS_TOKEN_MIN_VALIDITY = timedelta(seconds=env.int("ACCESS_TOKEN_MIN_VALIDITY_SECONDS", default=300))
# Everything a token callback does must fit in this budget, counted from the request's arrival
# in the web process (Recall gives 5 s): what is left is for writing the answer on a busy host.
CALLBACK_TIME_BUDGET = env.float("CALLBACK_TIME_BUDGET_SECONDS", default=3.8)
CALLBACK_LOG_RETENTION = timedelta(days=env.int("CALLBACK_LOG_RETENTION_DAYS", default=30))
# Meeting presence (from Zoom's meeting and participant events) is kept this long after the last
# event of a meeting, then pruned.
MEETING_ACTIVITY_RETENTION = timedelta(hours=env.int("MEETING_ACTIVITY_RETENTION_HOURS", default=48))
# Callback audit rows are written by a background thread in batches, this often (0: at once).
CALLBACK_AUDIT_FLUSH_SECONDS = env.float("CALLBACK_AUDIT_FLUSH_SECONDS", default=0.1)
# At most this many audit rows wait for the writer in a web process; more are dropped and counted.
CALLBACK_AUDIT_MAX_QUEUED = env.int("CALLBACK_AUDIT_MAX_QUEUED", default=20000)
# A web process keeps the connection rows callbacks read this long, dropping one the moment
# PostgreSQL notifies a change to it (zoomauth/rowcache.py). 0: every callback reads its row.
CALLBACK_ROW_CACHE_SECONDS = env.float("CALLBACK_ROW_CACHE_SECONDS", default=2.0)
WEBHOOK_FORWARD_PERIOD = timedelta(hours=env.int("WEBHOOK_FORWARD_PERIOD_HOURS", default=24))
# Finished Zoom webhook deliveries (their bodies already cleared, or failed ones kept for a replay)
# are deleted this long after they came. At least a day: until then a retry of the same event from
# Zoom is still recognised by its body's hash and dropped.
ZOOM_WEBHOOK_RETENTION = timedelta(days=env.int("ZOOM_WEBHOOK_RETENTION_DAYS", default=7))
if ZOOM_WEBHOOK_RETENTION < timedelta(days=1):
    raise ImproperlyConfigured("ZOOM_WEBHOOK_RETENTION_DAYS must be at least 1.")
# Zoom events taken in by a web process within this many seconds share one queue message (0: one each).
WEBHOOK_ENQUEUE_BATCH_SECONDS = env.float("WEBHOOK_ENQUEUE_BATCH_SECONDS", default=0.02)
# Events to the customer's backend are retried with backoff for this long, then marked failed.
EVENT_RETRY_PERIOD = timedelta(hours=env.int("EVENT_RETRY_PERIOD_HOURS", default=24))

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The one API auth for every view of the JSON API: an API token (the customer's backend) or a
    # session (a signed-in person); every view needs one of them unless it says otherwise.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # One JSON parser for the whole project: depth and text limits, a clear 400 (jsonbody.py).
    "DEFAULT_PARSER_CLASSES": [
        "brokerproject.jsonbody.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Trusted proxies in front of the broker: throttles and audit use the client address
    # they put in X-Forwarded-For instead of the proxy's own.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "callback_connection": env.str("CALLBACK_RATE_PER_CONNECTION", default="600/min"),
        "callback_address": env.str("CALLBACK_RATE_PER_ADDRESS", default="1200/min"),
        "callback_failures": env.str("CALLBACK_FAILURE_RATE_PER_ADDRESS", default="20/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Zoom token broker API",
    "DESCRIPTION": "Launch Recall.ai bots into Zoom meetings and read connection callback URLs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Flash messages carry secrets shown once (a new API key, an endpoint's whsec_ secret): kept in
# the server-side session (database), never in a cookie (the default is a signed, unencrypted one).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=["security.W021"])

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(LOG_LEVEL)
