"""API keys: shown once at creation, stored as a SHA-256 hash, revocable."""

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa

from webapp.errors import NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import ApiKey, User, Workspace, utcnow
from webapp.schemas.common import normalize_email

KEY_PREFIX = "dbk"
# Writing last_used_at on every request would turn every read into a write.
TOUCH_INTERVAL = timedelta(seconds=60)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(workspace: Workspace, *, name: str, user: User | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored or shown again."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationFailed(
            "API key name must be 1 to 100 characters.", details=[{"field": "name", "message": "invalid length"}]
        )
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_hex(24)}"
    api_key = ApiKey(
        workspace_id=workspace.id,
        user_id=user.id if user else None,
        name=name,
        prefix=prefix,
        key_hash=_hash(plaintext),
    )
    db.session.add(api_key)
    db.session.commit()
    return api_key, plaintext


def create_api_key_for_user(*, email: str, name: str) -> tuple[ApiKey, str]:
    """`flask api-keys create`: a key in the workspace of the user with this email."""
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"No user with email {email}.")
    workspace = db.session.get(Workspace, user.workspace_id)
    return create_api_key(workspace, name=name, user=user)


def authenticate_api_key(presented: str) -> ApiKey | None:
    """The live key matching `presented`, compared in constant time; None otherwise."""
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(presented) > 100:
        return None
    api_key = db.session.scalar(sa.select(ApiKey).where(ApiKey.prefix == parts[1]))
    if api_key is None or api_key.revoked_at is not None:
        return None
    if not hmac.compare_digest(api_key.key_hash, _hash(presented)):
        return None
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > TOUCH_INTERVAL:
        api_key.last_used_at = now
        db.session.commit()
    return api_key


def list_api_keys(workspace: Workspace) -> list[ApiKey]:
    return list(
        db.session.scalars(
            sa.select(ApiKey).where(ApiKey.workspace_id == workspace.id).order_by(ApiKey.created_at.desc())
        )
    )


def revoke_api_key(workspace: Workspace, key_id: uuid.UUID) -> ApiKey:
    api_key = db.session.scalar(sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace.id))
    if api_key is None:
        raise NotFound("API key not found.")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
    db.session.commit()
    return api_key
