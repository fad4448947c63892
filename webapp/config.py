"""Configuration read from the environment. Every setting is documented in README.md."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in ("1", "true", "yes", "on")


def database_url(url: str) -> str:
    """Normalise a database URL: PostgreSQL always goes through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    SECRET_KEY = _env("SECRET_KEY")
    # Fernet keys, comma-separated: the first encrypts, all decrypt (see README, key rotation).
    ENCRYPTION_KEY = _env("ENCRYPTION_KEY")
    SQLALCHEMY_DATABASE_URI = database_url(_env("DATABASE_URL", f"sqlite:///{ROOT / 'instance' / 'drumbeat.db'}"))
    # pre_ping: a connection the server dropped (restart, failover) is replaced, not used.
    # hide_parameters: a failed statement's values (emails, hashes, secrets) stay out of errors and logs.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
    # Seconds to wait for PostgreSQL to accept a connection before answering 503.
    DATABASE_CONNECT_TIMEOUT = _int("DATABASE_CONNECT_TIMEOUT", 5)
    # 12 MB: a 10,000-contact bulk request with custom fields fits, anything bigger is a 413.
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 12 * 1024 * 1024)
    # Statement timeout on PostgreSQL, so one slow query cannot hang a worker.
    STATEMENT_TIMEOUT_MS = _int("STATEMENT_TIMEOUT_MS", 30_000)

    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_API = _env("RATELIMIT_API", "100 per 15 minutes")
    RATELIMIT_PERFORMANCE = _env("RATELIMIT_PERFORMANCE", "20 per 5 minutes")
    # Test sends really send: fewer of them than other writes.
    RATELIMIT_TEST_SEND = _env("RATELIMIT_TEST_SEND", "10 per minute")
    RATELIMIT_LOGIN = _env("RATELIMIT_LOGIN", "10 per minute")
    RATELIMIT_WEBHOOK = _env("RATELIMIT_WEBHOOK", "600 per minute")
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto: exactly that many hops are
    # trusted. 0 (direct) ignores the headers, so a client cannot pick its own address for rate limits.
    TRUSTED_PROXY_HOPS = _int("TRUSTED_PROXY_HOPS", 0)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    PERMANENT_SESSION_LIFETIME = _int("SESSION_LIFETIME_SECONDS", 12 * 3600)

    LOG_FORMAT = _env("LOG_FORMAT", "json")
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")

    # Standard Webhooks: signatures older or newer than this are rejected.
    WEBHOOK_TOLERANCE_SECONDS = _int("WEBHOOK_TOLERANCE_SECONDS", 300)
    IDEMPOTENCY_TTL_SECONDS = 24 * 3600

    MAIL_TRANSPORT = _env("MAIL_TRANSPORT", "outbox")
    SMTP_HOST = _env("SMTP_HOST", "localhost")
    SMTP_PORT = _int("SMTP_PORT", 25)
    SMTP_USERNAME = _env("SMTP_USERNAME")
    SMTP_PASSWORD = _env("SMTP_PASSWORD")
    SMTP_SECURITY = _env("SMTP_SECURITY", "none")
    SMTP_TIMEOUT = _int("SMTP_TIMEOUT", 30)
    SMTP_HELO_NAME = _env("SMTP_HELO_NAME")
    MAIL_FROM = _env("MAIL_FROM", "Drumbeat <outreach@localhost>")
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    # CSV files kept between the upload and the mapping steps (one hour at most).
    IMPORT_UPLOAD_FOLDER = _env("IMPORT_UPLOAD_FOLDER", str(ROOT / "instance" / "uploads"))

    WORKER_BATCH_SIZE = _int("WORKER_BATCH_SIZE", 100)
    WORKER_LEASE_SECONDS = _int("WORKER_LEASE_SECONDS", 300)
    WORKER_POLL_SECONDS = _int("WORKER_POLL_SECONDS", 5)
    WORKER_MAX_ATTEMPTS = _int("WORKER_MAX_ATTEMPTS", 5)
    WORKER_PAUSE_AFTER_FAILURES = _int("WORKER_PAUSE_AFTER_FAILURES", 5)
    WORKER_PAUSE_SECONDS = _int("WORKER_PAUSE_SECONDS", 60)
    # Reading replies: each mailbox with IMAP settings is read this often (by any one worker).
    INBOX_POLL_SECONDS = _int("INBOX_POLL_SECONDS", 60)
    IMAP_TIMEOUT = _int("IMAP_TIMEOUT", 30)

    PASSWORD_HASH_TIME_COST = 3
    PASSWORD_HASH_MEMORY_COST = 65536


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="
    WTF_CSRF_ENABLED = True
    RATELIMIT_ENABLED = False
    LOG_FORMAT = "json"
    PASSWORD_HASH_TIME_COST = 1
    PASSWORD_HASH_MEMORY_COST = 8192
