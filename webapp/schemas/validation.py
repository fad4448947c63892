"""Pydantic errors as the domain's ValidationFailed: one field-by-field shape for the API's
error envelope and for the messages HTML forms show beside each field."""

from pydantic import ValidationError

from webapp.errors import ValidationFailed


def error_message(error: dict) -> str:
    """Pydantic's message for one error, without its "Value error, " prefix: just the reason."""
    return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_details(exc: ValidationError) -> list[dict]:
    details = []
    for error in _chosen_member(exc.errors(include_url=False, include_context=False, include_input=False)):
        location = ".".join(str(part) for part in error["loc"]) or "body"
        details.append({"field": location, "message": error_message(error)})
    return details


def _chosen_member(errors: list[dict]) -> list[dict]:
    """A body that may be one of several models (a union told apart by a literal such as
    `channel`) fails against each; pydantic names each model first in the location. Report only
    the errors of the models whose literal matched, located as fields of the body."""
    members = {error["loc"][0] for error in errors if error["loc"] and str(error["loc"][0])[:1].isupper()}
    if not members or len(members) != len({e["loc"][0] for e in errors if e["loc"]}):
        return errors
    wrong = {e["loc"][0] for e in errors if e["type"] == "literal_error" and len(e["loc"]) == 2}
    chosen = (members - wrong) or members
    return [{**e, "loc": e["loc"][1:]} for e in errors if e["loc"][0] in chosen]


def validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    details = validation_details(exc)
    if prefix:
        details = [{**d, "field": f"{prefix}.{d['field']}" if d["field"] != "body" else prefix} for d in details]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return ValidationFailed(f"Invalid request: {summary}{more}", details=details)
