"""`Idempotency-Key` records: the first response to a key is replayed for 24 hours."""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp.errors import Conflict, Unprocessable, ValidationFailed
from webapp.extensions import db
from webapp.models import IdempotencyKey, Workspace, utcnow


@dataclass
class StoredResponse:
    status_code: int
    body: dict


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def begin_idempotent_request(workspace: Workspace, key: str, fp: str) -> StoredResponse | IdempotencyKey:
    """Reserve `key` for this request, or return the response stored for it.

    Raises Unprocessable when the key was used with another request body, and Conflict
    while the first request with this key is still running.
    """
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.")
    expired_before = utcnow() - timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])
    db.session.execute(
        sa.delete(IdempotencyKey).where(
            IdempotencyKey.workspace_id == workspace.id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < expired_before,
        )
    )
    record = IdempotencyKey(workspace_id=workspace.id, key=key, fingerprint=fp)
    db.session.add(record)
    try:
        db.session.commit()
        return record
    except IntegrityError:
        db.session.rollback()
    existing = db.session.scalar(
        sa.select(IdempotencyKey).where(IdempotencyKey.workspace_id == workspace.id, IdempotencyKey.key == key)
    )
    if existing is None:  # the holder released it between our insert and this read
        raise Conflict("A request with this Idempotency-Key is in progress. Retry shortly.")
    if existing.fingerprint != fp:
        raise Unprocessable("This Idempotency-Key was already used with a different request.")
    if existing.status_code is None:
        raise Conflict("A request with this Idempotency-Key is in progress. Retry shortly.")
    return StoredResponse(existing.status_code, existing.response_body or {})


def finish_idempotent_request(record: IdempotencyKey, status_code: int, body: dict | None) -> None:
    """Store the response for replay; a server error releases the key so a retry runs again."""
    db.session.rollback()
    if status_code >= 500 or body is None:
        db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == record.id))
    else:
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.id == record.id)
            .values(status_code=status_code, response_body=body)
        )
    db.session.commit()


def prune_idempotency_keys() -> int:
    expired_before = utcnow() - timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])
    result = db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < expired_before))
    db.session.commit()
    return result.rowcount
