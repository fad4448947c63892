"""Pydantic errors as the domain's ValidationFailed: one field-by-field shape for the API's
error envelope and for the messages HTML forms show beside each field."""

from pydantic import ValidationError

from webapp.errors import ValidationFailed


def error_message(error: dict) -> str:
    """Pydantic's message for one error, without its "Value error, " prefix: just the reason."""
    return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_details(exc: ValidationError) -> list[dict]:
    details = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "body"
        details.append({"field": location, "message": error_message(error)})
    return details


def validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    details = validation_details(exc)
    if prefix:
        details = [{**d, "field": f"{prefix}.{d['field']}" if d["field"] != "body" else prefix} for d in details]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return ValidationFailed(f"Invalid request: {summary}{more}", details=details)
