"""Structured JSON logs with a request id, scrubbed of secrets and email addresses."""

import contextlib
import logging
import re
import sys
import time
import uuid

import structlog
from flask import Flask, g, request

SECRET_KEYS = {
    "password",
    "password_hash",
    "api_key",
    "key",
    "authorization",
    "x-api-key",
    "secret",
    "webhook_secret",
    "signature",
    "token",
    "smtp_password",
    "cookie",
    "session",
}
# Any key containing one of these is a secret too (new_password, webhook-signature, csrf_token...).
SECRET_KEY_PARTS = ("password", "secret", "token", "signature", "authorization", "cookie", "api_key", "api-key")
# \w and the RFC 5322 atext symbols, so a Unicode or unusual local part is masked whole, not from its
# middle; at most 64 characters (RFC 5321), which also keeps the scan linear on long text.
EMAIL_RE = re.compile(r"([\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]{0,63}@([\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,})")
# Our API keys (the public prefix stays), Standard Webhooks secrets and signatures, bearer tokens and
# `password=...`-style pairs, wherever they appear in text.
TOKEN_RE = re.compile(
    r"(dbk_[A-Za-z0-9]+_)[A-Za-z0-9_-]+"
    r"|whsec_[A-Za-z0-9+/=]+"
    r"|v1,[A-Za-z0-9+/=]{20,}"
    r"|(\bbearer\s+)[^\s\"',;]+"
    r"|(\b(?:password|passwd|secret|token|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
    re.IGNORECASE,
)
# Tracking and unsubscribe links carry a bearer token in the path.
TOKEN_PATH_RE = re.compile(r"^(/(?:t/[oc]|u)/)[^/]+")
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def mask_email(text: str) -> str:
    return EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _redact_token(match: re.Match) -> str:
    return (match.group(1) or match.group(2) or match.group(3) or "") + "[REDACTED]"


def is_secret_key(name: str) -> bool:
    name = name.lower()
    return name in SECRET_KEYS or any(part in name for part in SECRET_KEY_PARTS)


def scrub(value):
    """`value` with secrets redacted and email addresses masked, as JSON-ready data."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): ("[REDACTED]" if is_secret_key(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    # Anything else is rendered as text here, so nothing reaches the renderer unscrubbed.
    return TOKEN_RE.sub(_redact_token, mask_email(str(value)))


def redact(_logger, _method, event_dict):
    return scrub(event_dict)


def add_request_id(_logger, _method, event_dict):
    with contextlib.suppress(RuntimeError, AttributeError):
        event_dict.setdefault("request_id", g.request_id)
    return event_dict


def drop_formatted_message(_logger, _method, event_dict):
    # Another handler's Formatter may have stored record.message first; it repeats "event".
    if event_dict.get("message") == event_dict.get("event"):
        event_dict.pop("message", None)
    return event_dict


def configure_logging(app: Flask) -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        drop_formatted_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_id,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if app.config["LOG_FORMAT"] == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_drumbeat", False)]
    handler._drumbeat = True
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    # Werkzeug's access log prints full URLs (with unsubscribe tokens); ours replaces it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )

    @app.before_request
    def assign_request_id():
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def log_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        started = g.get("request_started")
        logging.getLogger("drumbeat.access").info(
            "request",
            extra={
                "method": request.method,
                "path": TOKEN_PATH_RE.sub(r"\1[REDACTED]", request.path),
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
            },
        )
        return response
