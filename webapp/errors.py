"""Domain errors raised by services, and the one handler that renders every error.

Under /api/ and the webhook paths, errors are the JSON envelope
`{"success": false, "error", "message", "statusCode", "details"}`; elsewhere an HTML page.
"""

import contextlib
import logging

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException


class ServiceError(Exception):
    status_code = 400
    error = "Bad Request"

    def __init__(self, message: str, *, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(ServiceError):
    status_code = 400
    error = "Validation Error"


class Unauthorized(ServiceError):
    status_code = 401
    error = "Unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    error = "Forbidden"


class NotFound(ServiceError):
    status_code = 404
    error = "Not Found"


class Conflict(ServiceError):
    status_code = 409
    error = "Conflict"


class InvalidTransition(Conflict):
    error = "Invalid Transition"


class Unprocessable(ServiceError):
    status_code = 422
    error = "Unprocessable Entity"


class BadGateway(ServiceError):
    """A server we depend on (a mail server) refused or could not be reached."""

    status_code = 502
    error = "Bad Gateway"


class ServiceUnavailable(ServiceError):
    status_code = 503
    error = "Service Unavailable"


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/events/", "/webhooks/", "/readyz", "/healthz"))


def error_response(status: int, error: str, message: str, details: list | None = None, headers=None):
    if wants_json():
        body = {"success": False, "error": error, "message": message, "statusCode": status, "details": details or []}
        response = jsonify(body)
    else:
        template = f"errors/{status}.html" if status in (400, 403, 404, 409, 413, 422, 429, 503) else "errors/500.html"
        response = render_template(template, status=status, error=error, message=message)
        from flask import make_response

        response = make_response(response)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _database_unavailable(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError) or bool(getattr(exc, "connection_invalidated", False))


def register_error_handlers(app: Flask) -> None:
    from webapp.extensions import db

    def rollback() -> None:
        # With the database gone, rolling back fails too; that must not turn a 503 into a 500.
        with contextlib.suppress(DBAPIError):
            db.session.rollback()

    @app.errorhandler(ServiceError)
    def handle_service_error(exc: ServiceError):
        rollback()
        # Refusals (401, 403, 404, 409...) are security-relevant: one record each, with the reason.
        logging.getLogger("drumbeat.errors").info(
            "request refused", extra={"status": exc.status_code, "error": exc.error, "reason": exc.message}
        )
        return error_response(exc.status_code, exc.error, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        headers = {}
        if exc.code == 405 and exc.response is None:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods or []))
        if exc.code == 429:
            message = f"Too many requests: limit of {exc.description}. Retry later."
            response = error_response(429, "Too Many Requests", message)
            return response
        description = exc.description or exc.name
        if exc.code == 413:
            description = "Request body too large."
        return error_response(exc.code or 500, exc.name, description, headers=headers)

    @app.errorhandler(DBAPIError)
    def handle_database_error(exc: DBAPIError):
        rollback()
        if _database_unavailable(exc):
            app.logger.error("database unavailable", extra={"error": type(exc.orig).__name__})
            return error_response(
                503, "Service Unavailable", "The database is unavailable. Retry shortly.", headers={"Retry-After": "5"}
            )
        app.logger.exception("database error")
        return error_response(500, "Internal Server Error", "An unexpected error occurred.")

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        rollback()
        app.logger.exception("unhandled error")
        return error_response(500, "Internal Server Error", "An unexpected error occurred.")
