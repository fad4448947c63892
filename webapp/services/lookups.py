"""Workspace-scoped fetches: another workspace's object is NotFound, never Forbidden."""

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


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
