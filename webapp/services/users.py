"""Workspaces and users: creation, password checks and session invalidation."""

import contextlib

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from webapp.errors import Conflict, ValidationFailed
from webapp.extensions import db
from webapp.models import User, Workspace, utcnow
from webapp.schemas.common import check_timezone, normalize_email

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128


def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=current_app.config["PASSWORD_HASH_TIME_COST"],
        memory_cost=current_app.config["PASSWORD_HASH_MEMORY_COST"],
    )


def hash_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long.",
            details=[{"field": "password", "message": "invalid length"}],
        )
    return _hasher().hash(password)


def create_user(*, email: str, password: str, workspace_name: str, role: str | None = None) -> User:
    """Create a user in the workspace called `workspace_name`, creating that workspace if new.

    The first user of a new workspace is its owner. Raises Conflict if the email is taken.
    """
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise ValidationFailed(str(exc), details=[{"field": "email", "message": str(exc)}]) from exc
    if db.session.scalar(sa.select(User.id).where(User.email == email)):
        raise Conflict(f"A user with email {email} already exists.")
    workspace = db.session.scalar(sa.select(Workspace).where(Workspace.name == workspace_name).limit(1))
    is_new = workspace is None
    if is_new:
        workspace = Workspace(name=workspace_name, settings={})
        db.session.add(workspace)
        db.session.flush()
    user = User(
        workspace_id=workspace.id,
        email=email,
        password_hash=hash_password(password),
        role=role or ("owner" if is_new else "member"),
    )
    db.session.add(user)
    db.session.commit()
    return user


_DUMMY_HASH: str | None = None


def authenticate_user(email: str, password: str) -> User | None:
    """The active user with these credentials, or None. Takes the same time for unknown emails."""
    global _DUMMY_HASH
    try:
        email = normalize_email(email)
    except ValueError:
        email = ""
    user = db.session.scalar(sa.select(User).where(User.email == email)) if email else None
    hasher = _hasher()
    if user is None or not user.is_active:
        _DUMMY_HASH = _DUMMY_HASH or hasher.hash("not a real password")
        with contextlib.suppress(VerificationError):
            hasher.verify(_DUMMY_HASH, password)
        return None
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def end_sessions(user: User) -> None:
    """Invalidate every session cookie issued to this user so far (logout everywhere)."""
    user.session_version += 1
    db.session.commit()


def change_password(user: User, *, password: str) -> None:
    user.password_hash = hash_password(password)
    user.session_version += 1
    db.session.commit()


def set_timezone(user: User, *, timezone: str) -> User:
    """Set the time zone the pages show `user` times in (an IANA name such as Europe/Paris).

    Raises ValidationFailed for a name zoneinfo does not know.
    """
    timezone = (timezone or "").strip()
    try:
        if not timezone:
            raise ValueError("choose a time zone, such as Europe/Paris or UTC")
        check_timezone(timezone)
    except ValueError as exc:
        raise ValidationFailed(f"Time zone: {exc}.", details=[{"field": "timezone", "message": str(exc)}]) from exc
    user.timezone = timezone
    db.session.commit()
    return user
