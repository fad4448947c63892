"""Workspace-scoped fetches: another workspace's object is NotFound, never Forbidden."""

import copy
import re
import uuid

import sqlalchemy as sa

from webapp.errors import NotFound
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignInstance, CampaignTemplate, Contact, Delivery, Workspace

_LABELS = {
    CampaignTemplate: "Template",
    CampaignInstance: "Campaign instance",
    CampaignEnrollment: "Enrollment",
    Contact: "Contact",
    Delivery: "Delivery",
}


def get_owned(model, workspace: Workspace, object_id: uuid.UUID, *, lock: bool = False):
    """The `model` row with this id in `workspace`, or NotFound. `lock` takes a row lock (PostgreSQL)."""
    query = sa.select(model).where(model.id == object_id, model.workspace_id == workspace.id)
    if lock:
        query = query.with_for_update(of=model)
    obj = db.session.scalar(query)
    if obj is None:
        raise NotFound(f"{_LABELS.get(model, model.__name__)} {object_id} not found.")
    return obj


def paginate(query: sa.Select, *, page: int, limit: int) -> tuple[list, int]:
    """One page of `query` and the total count."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    items = list(db.session.scalars(query.limit(limit).offset((page - 1) * limit)))
    return items, total


def like_pattern(text: str, *, anywhere: bool = True) -> str:
    """A LIKE pattern (escape "\\") matching `text` anywhere, or at the start only."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%" if anywhere else f"{escaped}%"


_COPY_SUFFIX = re.compile(r" \(copy(?: \d+)?\)$")
_COPY_BASE_LENGTH = 240  # leaves room for " (copy 12345)" within a 255-character name


def copy_name(model, workspace: Workspace, name: str) -> str:
    """The name of a copy of `name`: "<name> (copy)", else "(copy 2)", "(copy 3)"... the first one
    the workspace's `model` rows do not use yet. A copy of a copy counts on: "A (copy)" gives "A (copy 2)"."""
    base = _COPY_SUFFIX.sub("", name)[:_COPY_BASE_LENGTH]
    starts = like_pattern(f"{base} (copy", anywhere=False)
    taken = set(
        db.session.scalars(
            sa.select(model.name).where(model.workspace_id == workspace.id, model.name.like(starts, escape="\\"))
        )
    )
    number = 1
    while (candidate := f"{base} (copy)" if number == 1 else f"{base} (copy {number})") in taken:
        number += 1
    return candidate


def copied_columns(row, *, skip: tuple[str, ...] = ()) -> dict:
    """Every column value of `row` but its id, timestamps and `skip`, JSON values deep-copied: the
    keyword arguments of a new row like it (a column added later is copied too)."""
    left_out = {"id", "created_at", "updated_at", *skip}
    return {
        attr.key: copy.deepcopy(getattr(row, attr.key))
        for attr in sa.inspect(type(row)).column_attrs
        if attr.key not in left_out
    }
