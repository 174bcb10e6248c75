"""The only settings module. Every value comes from the environment, with a safe default for local use."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local development).")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

DATA_DIR = Path(os.environ.get("DATA_DIR", "./data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "users",
    "projects",
    "exports",
]

MIDDLEWARE = [
    # First, so every log record of a request carries its id (and the access line times the whole request).
    "config.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.api.middleware.EitherSlashMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.api.middleware.JsonErrorMiddleware",
]
CSRF_FAILURE_VIEW = "config.api.views.json_csrf_failure"

# Paths answer in both slash forms directly (see config/urls.py), never through a redirect.
APPEND_SLASH = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASE_URL = os.environ.get("DATABASE_URL", "")
# On PostgreSQL the few statements every request runs (token lookup, snapshot detail) are prepared once per
# connection (config/prepared.py). Set 0 behind a pooler that cannot follow prepared statements (PgBouncer before
# 1.21 in transaction mode, or with max_prepared_statements=0).
DATABASE_PREPARED_STATEMENTS = os.environ.get("DATABASE_PREPARED_STATEMENTS", "1") not in ("0", "false", "False", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "db.sqlite3"),
            "OPTIONS": {
                # WAL lets the background job pool write while requests read; IMMEDIATE avoids lock upgrades.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Kept open between requests (per thread): opening the file and setting WAL again cost a request
            # about as much as answering it. A local file never drops a connection, so no health check.
            "CONN_MAX_AGE": 600,
            # Tests use a file too (not shared-cache memory, where a background job thread meets table
            # locks that no busy timeout waits for).
            "TEST": {"NAME": str(DATA_DIR / "test-db.sqlite3")},
        }
    }

# Attach mode (beside an existing Label Studio): its database is read for projects, tasks, users and
# organizations, never written (the connection itself is read only), and its callers are recognised by asking
# Label Studio who they are. Snapshot and conversion jobs stay in DATABASE_URL.
LABEL_STUDIO_DATABASE_URL = os.environ.get("LABEL_STUDIO_DATABASE_URL", "")
LABEL_STUDIO_ATTACHED = bool(LABEL_STUDIO_DATABASE_URL)
LABEL_STUDIO_URL = os.environ.get("LABEL_STUDIO_URL", "").rstrip("/")
# How long the answer to "who is this caller" is reused for the same credentials.
LABEL_STUDIO_AUTH_CACHE_SECONDS = float(os.environ.get("LABEL_STUDIO_AUTH_CACHE_SECONDS", "10"))
LABEL_STUDIO_AUTH_TIMEOUT = float(os.environ.get("LABEL_STUDIO_AUTH_TIMEOUT", "5"))
if LABEL_STUDIO_ATTACHED:
    if not LABEL_STUDIO_URL:
        raise ImproperlyConfigured("LABEL_STUDIO_URL must be set with LABEL_STUDIO_DATABASE_URL (attach mode).")
    if not LABEL_STUDIO_DATABASE_URL.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured("LABEL_STUDIO_DATABASE_URL must be a PostgreSQL URL (postgres://...).")
    DATABASES["labelstudio"] = dj_database_url.parse(
        LABEL_STUDIO_DATABASE_URL, conn_max_age=60, conn_health_checks=True
    )
    DATABASES["labelstudio"]["OPTIONS"] = {"options": "-c default_transaction_read_only=on"}
    DATABASE_ROUTERS = ["config.labelstudio.router.LabelStudioRouter"]
    INSTALLED_APPS.append("config.labelstudio")
    # Label Studio's own `sessionid` and `csrftoken` cookies must never reach Django's session machinery, which
    # would clear a cookie it cannot read (logging the user out of Label Studio): ours have other names.
    SESSION_COOKIE_NAME = "lsexport_sessionid"
    CSRF_COOKIE_NAME = "lsexport_csrftoken"

# Stored uploads and their folders are the owner's only, like everything else under DATA_DIR.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Largest request body accepted (task imports are JSON bodies); larger ones answer 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("MAX_REQUEST_BYTES", str(256 * 1024 * 1024)))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = ["users.backends.MembershipBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"

# Export files: a folder under DATA_DIR (the default), or an S3-compatible bucket through django-storages with
# EXPORT_STORAGE=s3 (implied when AWS_STORAGE_BUCKET_NAME is set). Scratch files stay local in either case.
EXPORT_STORAGE = os.environ.get("EXPORT_STORAGE") or ("s3" if os.environ.get("AWS_STORAGE_BUCKET_NAME") else "local")
# Downloads stream through the service; with EXPORT_DOWNLOAD_REDIRECT=1 and a bucket they answer 302 to a
# presigned URL valid for EXPORT_URL_EXPIRES seconds.
EXPORT_DOWNLOAD_REDIRECT = env_bool("EXPORT_DOWNLOAD_REDIRECT", False)
EXPORT_URL_EXPIRES = int(os.environ.get("EXPORT_URL_EXPIRES", "300"))


def s3_export_storage() -> dict:
    """The `exports` storage on a bucket; credentials may also come from boto3's usual chain (role, profile)."""
    from botocore.config import Config

    bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
    if not bucket:
        raise ImproperlyConfigured("EXPORT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    addressing = os.environ.get("AWS_S3_ADDRESSING_STYLE") or None
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            "location": os.environ.get("AWS_LOCATION", ""),
            "file_overwrite": True,
            "default_acl": None,
            "querystring_expire": EXPORT_URL_EXPIRES,
            "client_config": Config(
                signature_version="s3v4",
                s3={"addressing_style": addressing} if addressing else {},
                connect_timeout=int(os.environ.get("AWS_S3_CONNECT_TIMEOUT", "10")),
                retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_S3_MAX_ATTEMPTS", "3"))},
            ),
        },
    }


if EXPORT_STORAGE == "s3":
    EXPORTS_STORAGE = s3_export_storage()
elif EXPORT_STORAGE == "local":
    EXPORTS_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "exports")},
    }
else:
    raise ImproperlyConfigured(f"EXPORT_STORAGE must be 'local' or 's3', not {EXPORT_STORAGE!r}.")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "exports": EXPORTS_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its authenticate_header makes unauthenticated requests answer 401, not 403.
        "users.authentication.TokenAuthentication",
        "users.authentication.BearerAuthentication",
        "users.authentication.SessionAuthentication",
    ]
    if not LABEL_STUDIO_ATTACHED
    # Attach mode: Label Studio's callers (its session cookie, legacy token, personal access tokens), and only those.
    else ["users.authentication.LabelStudioAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exceptions.exception_handler",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Label Studio-compatible Projects and Export API",
    "DESCRIPTION": "Projects, task import and export snapshots, speaking Label Studio's API contract.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge fetched from the public schema validator: the docs page loads only the service's own files.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # The schemes API clients use; the session (browsable API, admin) stays out of the schema, as upstream.
    "AUTHENTICATION_WHITELIST": [
        "users.authentication.TokenAuthentication",
        "users.authentication.BearerAuthentication",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.api.schema.postprocess_schema"],
    # Path ids use the project's own `id` converter (config/api/urls.py): integers in the schema, as upstream.
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    # Label Studio's own component names, so generated clients name these types the same way.
    "ENUM_NAME_OVERRIDES": {
        "Status7bfEnum": "exports.models.Status",
        "AnnotatedEnum": "exports.serializers.FILTER_MODES",
    },
}

# Personal access tokens (users/tokens.py): a long-lived JWT refresh token, exchanged at /api/token/refresh/
# for short-lived access tokens sent as `Authorization: Bearer`. Signed with SECRET_KEY.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=int(os.environ.get("ACCESS_TOKEN_MINUTES", "5"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=int(os.environ.get("PERSONAL_TOKEN_DAYS", str(200 * 365)))),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}

# Background jobs: "thread" runs them in a small pool inside the web process (the embedded default),
# "sync" runs them in the committing thread (tests), "celery" sends them to workers when a broker is set.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
JOBS_BACKEND = os.environ.get("JOBS_BACKEND", "celery" if CELERY_BROKER_URL else "thread")
JOBS_THREADS = int(os.environ.get("JOBS_THREADS", "2"))
# A running job renews its lease at least this often; a lease not renewed for EXPORT_LEASE_SECONDS is dead.
EXPORT_LEASE_SECONDS = int(os.environ.get("EXPORT_LEASE_SECONDS", "60"))
EXPORT_BATCH_SIZE = int(os.environ.get("EXPORT_BATCH_SIZE", "2000"))
# A snapshot of at least EXPORT_PARALLEL_MIN_TASKS tasks is written as EXPORT_PARTS task-id ranges by as many
# jobs at once, then joined (exports/parallel.py); EXPORT_PARTS=1 writes every snapshot in one job.
EXPORT_PARTS = max(1, int(os.environ.get("EXPORT_PARTS", "1")))
EXPORT_PARALLEL_MIN_TASKS = int(os.environ.get("EXPORT_PARALLEL_MIN_TASKS", "200000"))
# How long a split snapshot waits for a queued part to start before it counts as lost.
EXPORT_PART_WAIT_SECONDS = int(os.environ.get("EXPORT_PART_WAIT_SECONDS", "600"))
# The sweep (in the web process's pool, or in every Celery worker) runs this often: it fails jobs whose lease
# expired or whose process died, and requeues jobs nobody claimed. Celery workers requeue a job only after it
# has waited JOBS_REQUEUE_SECONDS (a long queue is normal there; a requeued job that was claimed meanwhile
# does nothing).
JOBS_SWEEP_SECONDS = float(os.environ.get("JOBS_SWEEP_SECONDS", "30"))
JOBS_REQUEUE_SECONDS = float(os.environ.get("JOBS_REQUEUE_SECONDS", "300"))
# CSV and TSV cells that start like a formula (=, +, -, @, tab, CR) get a leading ' when on (default off, as
# Label Studio writes them unchanged).
EXPORT_CSV_ESCAPE_FORMULAS = env_bool("EXPORT_CSV_ESCAPE_FORMULAS", False)
# Snapshots older than this many days are removed by the sweep with their conversions and files (unset: kept).
EXPORT_RETENTION_DAYS = float(os.environ["EXPORT_RETENTION_DAYS"]) if os.environ.get("EXPORT_RETENTION_DAYS") else None
# Celery workers stop a job after EXPORT_TIME_LIMIT seconds (it then ends failed with the reason) and kill its
# process a minute later if it has not stopped by then.
EXPORT_TIME_LIMIT = int(os.environ.get("EXPORT_TIME_LIMIT", "3600"))
CELERY_TASK_SOFT_TIME_LIMIT = EXPORT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = EXPORT_TIME_LIMIT + 60
# A job's message is acknowledged only once the job has ended, and is put back when its worker process dies;
# each worker process holds one message at a time, so queued jobs wait where any idle worker can take them.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands an unacknowledged message to another worker after this long; above the hard time limit, so a
# running job is never handed out twice. The sweep deals with a lost worker's job long before.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
# Hosts whose http(s) task images the *_WITH_IMAGES exports may download (comma list; empty: none).
# Addresses that resolve to private, loopback, link-local or reserved networks are refused even when listed.
EXPORT_IMAGE_HOSTS = env_list("EXPORT_IMAGE_HOSTS")
# `/data/local-files/?d=` files outside upload/ have no owning organization here (no Local Storage records), so
# they are packed only when this is on: for a single-tenant service whose operator put them under DATA_DIR/media.
EXPORT_SHARED_LOCAL_FILES = env_bool("EXPORT_SHARED_LOCAL_FILES", False)
# The brush formats refuse (fail the conversion, naming task and annotation) a mask of more pixels than this,
# before decoding it. Tracing a mask into COCO polygons holds about 4 bytes per pixel, so the default (10k x 10k,
# three times an 8K frame) keeps one conversion near 0.4 GB; Label Studio's editor paints up to 16384 x 16384,
# which would take over 1 GB.
EXPORT_MAX_MASK_PIXELS = int(os.environ.get("EXPORT_MAX_MASK_PIXELS", "100000000"))
# Conversions run inside requests (the easy export of a converted format) share this many slots per web process;
# a request waits up to EXPORT_INLINE_WAIT_SECONDS for one, then answers 503 with Retry-After. 2, like JOBS_THREADS:
# two conversions at the mask limit stay under 1 GB per process, and bigger or busier exports belong in snapshot
# conversions, which wait in the job queue. The wait rides out a short burst and ends well before a proxy's usual
# 60 s timeout.
EXPORT_INLINE_CONVERSIONS = max(1, int(os.environ.get("EXPORT_INLINE_CONVERSIONS", "2")))
EXPORT_INLINE_WAIT_SECONDS = float(os.environ.get("EXPORT_INLINE_WAIT_SECONDS", "30"))

# Webhooks (exports/webhooks.py). Targets must resolve to public addresses; a host listed in WEBHOOK_HOSTS (comma
# list of host names or addresses) may also be private, loopback or link-local, and so may a listed address. A
# delivery waits WEBHOOK_TIMEOUT seconds for its answer; one that may go better later is tried again after
# WEBHOOK_RETRY_SECONDS, doubling each time, up to WEBHOOK_ATTEMPTS attempts in all (1, 2, 4, 8 s by default).
WEBHOOK_HOSTS = env_list("WEBHOOK_HOSTS")
WEBHOOK_TIMEOUT = float(os.environ.get("WEBHOOK_TIMEOUT", "10"))
WEBHOOK_ATTEMPTS = max(1, int(os.environ.get("WEBHOOK_ATTEMPTS", "5")))
WEBHOOK_RETRY_SECONDS = float(os.environ.get("WEBHOOK_RETRY_SECONDS", "1"))

# LOG_FORMAT=json writes every log line as one JSON object (time, level, logger, message, request_id, user_id,
# job_id, exception) plus one access line per request; "text" (the default) writes plain messages.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or "text"
LOGGING = logging_config(LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))
