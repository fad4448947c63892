"""Build the OpenAPI 3.1 document from the operations' pydantic models."""

import re

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webapp.api.base import IDEMPOTENCY_KEY_PATTERN, Operation
from webapp.schemas.campaign_steps import CampaignStepUpdate
from webapp.schemas.common import TIMEZONE_SCHEMA
from webapp.schemas.events import EventWebhookIn

ERROR_STATUSES = {
    400: "Invalid request (bad JSON, wrong types, unknown fields, values out of range)",
    401: "Missing, invalid or revoked API key",
    404: "No such object in this workspace",
    409: "Conflict with the object's current state",
    413: "Request body too large",
    422: "Idempotency-Key reused with a different request",
    429: "Rate limit exceeded",
    503: "Database unavailable",
}
# Operations that parse their body by hand (raw_body=True) and the model that documents it.
RAW_BODIES: dict[str, type[BaseModel]] = {
    "receive_events": EventWebhookIn,
    "receive_signed_events": EventWebhookIn,
    "update_campaign_step": CampaignStepUpdate,
}
# No input string may contain NUL (PostgreSQL cannot store it); lone surrogates are not JSON text.
NO_NUL = "^[^\\x00]*$"
PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
CONVERTER_SCHEMAS = {"uuid": {"type": "string", "format": "uuid"}, "int": {"type": "integer"}, None: {"type": "string"}}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "error", "message", "statusCode"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "statusCode": {"type": "integer"},
        "details": {"type": "array", "items": {}},
    },
}
PAGINATION_SCHEMA = {
    "type": "object",
    "required": ["page", "limit", "total", "totalPages"],
    "properties": {k: {"type": "integer"} for k in ("page", "limit", "total", "totalPages")},
}


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    seen: dict[tuple, None] = {}
    for op in operations:
        raw = RAW_BODIES.get(op.endpoint) if op.raw_body else None
        for model, mode in ((op.body or raw, "validation"), (op.response, "serialization")):
            if isinstance(model, type) and issubclass(model, BaseModel):
                seen[(model, mode)] = None
    return list(seen)


def _replace(value, schema: dict, ref: dict):
    if value == schema:
        return ref
    if isinstance(value, dict):
        return {k: _replace(v, schema, ref) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, schema, ref) for v in value]
    return value


def _shared(components: dict, schema: dict, name: str) -> dict:
    """Replace every inline copy of a large `schema` with a reference to one component `name`."""
    components = _replace(components, schema, {"$ref": f"#/components/schemas/{name}"})
    components[name] = schema
    return components


def _no_nul(value):
    """Add NO_NUL to every free string schema in `value` (api/base.py rejects NUL in any input)."""
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: (_no_nul(v) if k != "enum" else v) for k, v in value.items()}
    if out.get("type") == "string" and not {"enum", "const", "pattern", "format"} & out.keys():
        out["pattern"] = NO_NUL
    return out


def _ref_names(value) -> set[str]:
    if isinstance(value, dict):
        own = {value["$ref"].rsplit("/", 1)[1]} if isinstance(value.get("$ref"), str) else set()
        return own.union(*(_ref_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_ref_names(v) for v in value))
    return set()


def _request_side(components: dict, roots: list[dict]) -> set[str]:
    """The names of the components that request bodies use, directly or nested."""
    names, todo = set(), set().union(*(_ref_names(r) for r in roots))
    while todo:
        name = todo.pop()
        if name not in names and name in components:
            names.add(name)
            todo |= _ref_names(components[name])
    return names


def build_spec(operations: list[Operation], *, title: str, version: str) -> dict:
    keys = _models(operations)
    refs, schema = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    components = dict(schema.get("$defs", {}))
    bodies = [refs[key] for key in keys if key[1] == "validation"]
    for name in _request_side(components, bodies):
        components[name] = _no_nul(components[name])
    components["Error"] = ERROR_SCHEMA
    components["Pagination"] = PAGINATION_SCHEMA
    components = _shared(components, TIMEZONE_SCHEMA, "TimeZone")
    paths: dict[str, dict] = {}
    for op in operations:
        path = PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", op.rule)
        params = [
            {"name": m.group(2), "in": "path", "required": True, "schema": CONVERTER_SCHEMAS.get(m.group(1))}
            for m in PATH_PARAM.finditer(op.rule)
        ]
        if op.query is not None:
            query_schema = op.query.model_json_schema()
            for name, prop in query_schema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in query_schema.get("required", []),
                        "schema": _no_nul({k: v for k, v in prop.items() if k != "title"}),
                    }
                )
        if op.method == "POST" and op.auth:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
                    "description": "Replays the first response to the same key and body for 24 hours.",
                }
            )
        data_schema: dict = {"type": "null"}
        if op.response is not None:
            ref = refs[(op.response, "serialization")]
            data_schema = {"type": "array", "items": ref} if op.paginated else ref
        success = {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": data_schema},
        }
        if op.paginated:
            success["required"].append("pagination")
            success["properties"]["pagination"] = {"$ref": "#/components/schemas/Pagination"}
        if op.media_type == "application/json":
            content = {"application/json": {"schema": success}}
        else:
            content = {op.media_type: {"schema": {"type": "string"}}}
        responses = {str(op.status): {"description": "Success", "content": content}}
        statuses = {400, 413, 429, 503, *op.extra_errors}
        if op.auth:
            statuses.add(401)
        if params and any(p["in"] == "path" for p in params):
            statuses.add(404)
        if op.method == "POST" and op.auth:
            statuses.update({409, 422})
        for status in sorted(statuses):
            responses[str(status)] = {
                "description": ERROR_STATUSES.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        entry = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {
                "required": not op.body_optional,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        elif op.raw_body:
            raw = RAW_BODIES.get(op.endpoint)
            schema = refs[(raw, "validation")] if raw else {}
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        if not op.auth:
            entry["security"] = []
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Drumbeat campaign API. Every response uses the success/error envelope.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKeyHeader": []}],
    }
