"""Structured JSON logs with a request id, scrubbed of secrets and email addresses."""

import contextlib
import logging
import re
import sys
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
EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Our API keys and Standard Webhooks secrets/signatures, wherever they appear in text.
TOKEN_RE = re.compile(r"(dbk_[A-Za-z0-9]+_)[A-Za-z0-9_-]+|whsec_[A-Za-z0-9+/=]+|v1,[A-Za-z0-9+/=]{20,}")


def mask_email(text: str) -> str:
    return EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def scrub(value):
    if isinstance(value, str):
        return TOKEN_RE.sub(lambda m: (m.group(1) or "") + "[REDACTED]", mask_email(value))
    if isinstance(value, dict):
        return {k: ("[REDACTED]" if str(k).lower() in SECRET_KEYS else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def redact(_logger, _method, event_dict):
    return scrub(event_dict)


def add_request_id(_logger, _method, event_dict):
    with contextlib.suppress(RuntimeError, AttributeError):
        event_dict.setdefault("request_id", g.request_id)
    return event_dict


def configure_logging(app: Flask) -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
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
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", incoming) else uuid.uuid4().hex

    @app.after_request
    def log_request(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        logging.getLogger("drumbeat.access").info(
            "request", extra={"method": request.method, "path": request.path, "status": response.status_code}
        )
        return response
