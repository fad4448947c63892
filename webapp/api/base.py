"""The API's machinery: one decorator declares an operation's path, input and output models.

It parses and validates the request (JSON body, query string), calls the view with typed
arguments, wraps the result in the `{"success": true, "data": ...}` envelope, replays
`Idempotency-Key` requests, and records the operation for the OpenAPI document.
"""

import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Response, g, jsonify, request
from pydantic import BaseModel, ValidationError

from webapp.errors import ServiceError, ValidationFailed
from webapp.schemas.validation import validation_details, validation_failed  # noqa: F401 (re-exported)
from webapp.services.idempotency import (
    StoredResponse,
    begin_idempotent_request,
    fingerprint,
    finish_idempotent_request,
)

MAX_BODY_DEPTH = 32
# What the OpenAPI document promises for the header, so both say the same.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$"
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
TOO_DEEP = f"Malformed JSON: nested too deeply (more than {MAX_BODY_DEPTH} levels)."
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
BAD_TEXT = "text must not contain NUL characters (\\u0000) or unpaired surrogates"


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    body_optional: bool = False  # no body at all validates as {}
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    paginated: bool = False
    auth: bool = True
    raw_body: bool = False
    extra_errors: tuple[int, ...] = ()
    description: str = ""
    # Anything but JSON: the view returns its own Response (e.g. a streamed CSV file), no envelope.
    media_type: str = "application/json"


@dataclass
class Page:
    items: list
    total: int
    page: int
    limit: int


@dataclass
class Registry:
    operations: list[Operation] = field(default_factory=list)


registry = Registry()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body() -> Any:
    """The request body as JSON, or ValidationFailed with a readable reason."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationFailed("Request body is required: send a JSON object.")
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ValidationFailed("Content-Type must be application/json.")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValidationFailed(TOO_DEEP) from exc
    except ValueError as exc:
        raise ValidationFailed(f"Malformed JSON: {str(exc)[:200]}") from exc
    check_json_values(data, raw)
    return data


def check_json_values(data: Any, raw: bytes | None = None) -> None:
    """Reject what no field accepts but would break further on: nesting deeper than MAX_BODY_DEPTH
    (validators recurse) and text with NUL or unpaired surrogates (PostgreSQL and UTF-8 refuse
    them, which would be a 500). Iterative, so a hostile body cannot exhaust the stack. Given the
    `raw` body it was parsed from, the text is only searched when the body could hold such text."""
    check_text = raw is None or _may_hold_bad_text(raw)
    # Each entry: (value, depth, where) with `where` a (parent's where, key) link, spelled out
    # only for the error message.
    stack = [(data, 1, None)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if check_text and _BAD_TEXT.search(item):
                raise _bad_text(_path(where) or "body")
        elif isinstance(item, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise ValidationFailed(TOO_DEEP)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if check_text and isinstance(key, str) and _BAD_TEXT.search(key):
                    raise _bad_text(_path((where, key)))
                if check_text or isinstance(child, dict | list):
                    stack.append((child, depth + 1, (where, key)))


# In JSON text a NUL can only come as the escape \u0000 (a raw control character is a parse
# error), and a surrogate as an escape or as the bytes ED A0-BF, which json.loads lets through.
_BAD_TEXT_BYTES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]")


def _may_hold_bad_text(raw: bytes) -> bool:
    return json.detect_encoding(raw) != "utf-8" or _BAD_TEXT_BYTES.search(raw) is not None


def _path(where) -> str:
    keys = []
    while where is not None:
        where, key = where
        keys.append(str(key))
    return ".".join(reversed(keys))


def _bad_text(where: str) -> ValidationFailed:
    return ValidationFailed(f"Invalid request: {where}: {BAD_TEXT}", details=[{"field": where, "message": BAD_TEXT}])


def parse_body(model: type[BaseModel], *, optional: bool = False) -> BaseModel:
    data = {} if optional and not request.get_data(cache=True).strip() else parse_json_body()
    if not isinstance(data, dict):
        raise ValidationFailed("Request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def parse_query(model: type[BaseModel]) -> BaseModel:
    repeated = sorted({key for key, values in request.args.lists() if len(values) > 1})
    if repeated:
        raise ValidationFailed(
            f"Invalid request: query parameter {repeated[0]} given more than once.",
            details=[{"field": key, "message": "given more than once"} for key in repeated],
        )
    args = {key: value for key, value in request.args.items()}
    check_json_values(args)
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def envelope(op: Operation, result: Any) -> tuple[dict, int]:
    if op.paginated:
        page: Page = result
        items = [op.response.model_validate(item).model_dump(mode="json") for item in page.items]
        total_pages = math.ceil(page.total / page.limit) if page.total else 0
        return {
            "success": True,
            "data": items,
            "pagination": {
                "page": page.page,
                "limit": page.limit,
                "total": page.total,
                "totalPages": total_pages,
            },
        }, op.status
    if op.response is None:
        return {"success": True, "data": None}, op.status
    data = op.response.model_validate(result).model_dump(mode="json")
    return {"success": True, "data": data}, op.status


def _error_body(exc: ServiceError) -> dict:
    return {
        "success": False,
        "error": exc.error,
        "message": exc.message,
        "statusCode": exc.status_code,
        "details": exc.details,
    }


def operation(blueprint, method: str, rule: str, *, summary: str, tag: str, **options):
    """Declare an API operation on `blueprint` (see Operation for the options)."""

    def decorator(view):
        op = Operation(
            method=method,
            rule=blueprint.url_prefix + rule,
            endpoint=view.__name__,
            summary=summary,
            tag=tag,
            description=(view.__doc__ or "").strip(),
            **options,
        )
        registry.operations.append(op)

        @functools.wraps(view)
        def wrapper(**path_args):
            kwargs = dict(path_args)
            if op.body is not None:
                kwargs["body"] = parse_body(op.body, optional=op.body_optional)
            if op.query is not None:
                kwargs["query"] = parse_query(op.query)
            key = request.headers.get("Idempotency-Key") if method == "POST" and op.auth else None
            if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
                raise ValidationFailed(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters (inner spaces allowed).",
                    details=[{"field": "Idempotency-Key", "message": "invalid"}],
                )
            if op.media_type != "application/json":
                return view(**kwargs)
            if key is None:
                body, status = envelope(op, view(**kwargs))
                return jsonify(body), status
            return _idempotent(op, view, kwargs, key)

        blueprint.add_url_rule(rule, view.__name__, wrapper, methods=[method])
        return wrapper

    return decorator


def _idempotent(op: Operation, view, kwargs: dict, key: str) -> Response | tuple:
    fp = fingerprint(request.method, request.path, request.get_data(cache=True))
    claim = begin_idempotent_request(g.workspace, key, fp)
    if isinstance(claim, StoredResponse):
        response = jsonify(claim.body)
        response.status_code = claim.status_code
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        body, status = envelope(op, view(**kwargs))
    except ServiceError as exc:
        if exc.status_code < 500:
            finish_idempotent_request(claim, exc.status_code, _error_body(exc))
        else:
            finish_idempotent_request(claim, exc.status_code, None)
        raise
    except BaseException:
        finish_idempotent_request(claim, 500, None)
        raise
    finish_idempotent_request(claim, status, body)
    return jsonify(body), status
