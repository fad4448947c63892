"""The bridge from HTML forms to the pydantic models that also validate the API.

Views call `parse_form(Model)`; a ValidationFailed carries per-field details that
`webapp.web.errors_by_field` turns into messages beside each field (422).
"""

from collections.abc import Iterable

from flask import request
from pydantic import BaseModel, ValidationError

from webapp.errors import ValidationFailed
from webapp.schemas.validation import validation_failed

EMPTY = ("", None)


def form_data(*, lists: Iterable[str] = (), booleans: Iterable[str] = (), nested: str = ".") -> dict:
    """request.form as plain data: blank fields dropped, `lists` as lists, unchecked
    `booleans` as False, and `a.b` names as nested objects (`settings.daily_cap`)."""
    data: dict = {}
    lists, booleans = set(lists), set(booleans)
    for name in request.form:
        if name == "csrf_token":
            continue
        values = [v for v in request.form.getlist(name) if v not in EMPTY]
        if any("\x00" in v for v in values):
            # PostgreSQL cannot store NUL in text: refuse it here rather than fail later.
            raise ValidationFailed(
                "Text must not contain NUL characters.",
                details=[{"field": name, "message": "must not contain NUL characters"}],
            )
        if name in lists:
            value = values
        elif name in booleans:
            value = request.form.get(name) in ("on", "true", "1", "yes")
        elif not values:
            continue
        else:
            value = values[-1]
        _put(data, name.split(nested), value)
    for name in booleans:
        if name not in request.form:
            _put(data, name.split(nested), False)
    return data


def _put(data: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def parse_form(model: type[BaseModel], data: dict | None = None, **options) -> BaseModel:
    """Validate the submitted form with `model`, or raise ValidationFailed (400 semantics;
    HTML views answer 422 with the form and its messages)."""
    try:
        # Form values are all text: let pydantic coerce "50" to 50 here (the API stays strict).
        return model.model_validate(form_data(**options) if data is None else data, strict=False)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
