"""Tasks: LinkedIn and manual steps waiting for a person, with the message to copy; Done or Skip
moves the enrollment on."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, request, url_for

from webapp.htmx import hx_trigger, is_htmx, render
from webapp.models import utcnow
from webapp.security import current_workspace, require_login
from webapp.services.instances import list_instances
from webapp.services.tasks import due_state, finish_task, list_tasks
from webapp.web.listing import choice, page_arg, query_args, uuid_arg

bp = Blueprint("tasks", __name__)
bp.before_request(require_login)

TASK_TYPES = {
    "connection_request": "Connection request",
    "message": "LinkedIn message",
    "profile_visit": "Profile visit",
    "inmail": "InMail",
    "task": "Manual task",
}
DUE = {"overdue": "Overdue", "today": "Due today or overdue", "upcoming": "Upcoming"}
PER_PAGE = 20
CAMPAIGNS_IN_FILTER = 200


@dataclass(frozen=True)
class Filters:
    """The list's query string; unknown values are ignored (they come from editable URLs)."""

    due: str | None = None
    type: str | None = None
    campaign: uuid.UUID | None = None
    page: int = 1

    @classmethod
    def parse(cls, values) -> "Filters":
        return cls(
            choice(values, "due", DUE),
            choice(values, "type", TASK_TYPES),
            uuid_arg(values, "campaign"),
            page_arg(values),
        )

    def args(self) -> dict:
        """Query arguments for url_for, without the empty ones."""
        return query_args(due=self.due, type=self.type, campaign=self.campaign, page=self.page)


@dataclass(frozen=True)
class TaskRow:
    id: uuid.UUID
    type_label: str
    name: str
    email: str
    company: str | None
    title: str | None
    profile_url: str | None
    campaign: str
    step_number: int
    message: str | None
    due_at: datetime
    due_state: str

    @property
    def rows(self) -> int:
        """Enough rows for the whole message at about 60 characters a line (the field does not resize:
        a resized field carries an inline style that htmx would copy onto its replacement)."""
        lines = sum(max(1, -(-len(line) // 60)) for line in (self.message or "").splitlines())
        return min(max(lines, 2), 12)


def profile_link(url: str | None) -> str | None:
    """`url` if it is an http(s) link with a host, else None (never a javascript: or data: URL)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _row(task, contact, step, instance, message, now: datetime) -> TaskRow:
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part) or contact.email
    return TaskRow(
        id=task.id,
        type_label=TASK_TYPES.get(task.type, task.type.replace("_", " ").capitalize()),
        name=name,
        email=contact.email,
        company=contact.company,
        title=contact.title,
        profile_url=profile_link(contact.linkedin_url),
        campaign=instance.name,
        step_number=step.position,
        message=message,
        due_at=task.due_at,
        due_state=due_state(task.due_at, now),
    )


def _page(filters: Filters, *, status: int = 200):
    workspace = current_workspace()
    now = utcnow()
    query = {"due": filters.due, "type": filters.type, "instance_id": filters.campaign, "limit": PER_PAGE, "now": now}
    rows, total = list_tasks(workspace, page=filters.page, **query)
    pages = max(1, -(-total // PER_PAGE))
    if filters.page > pages:
        # The last task of the last page was just finished: show the page before it.
        filters = Filters(filters.due, filters.type, filters.campaign, pages)
        rows, total = list_tasks(workspace, page=filters.page, **query)
    campaigns, _ = list_instances(workspace, limit=CAMPAIGNS_IN_FILTER)
    return render(
        "tasks/index.html",
        block="task_list",
        status=status,
        rows=[_row(*row, now) for row in rows],
        total=total,
        pages=pages,
        filters=filters,
        campaign_choices=[(str(campaign.id), campaign.name) for campaign in campaigns],
        task_types=list(TASK_TYPES.items()),
        due_choices=list(DUE.items()),
    )


@bp.get("/tasks")
def index():
    """Open tasks, soonest first, filtered by due date, type and campaign."""
    return _page(Filters.parse(request.args))


@bp.post("/tasks/<uuid:task_id>/done")
def done(task_id: uuid.UUID):
    """Mark the task done: the enrollment moves on to its next step."""
    return _finish(task_id, done=True)


@bp.post("/tasks/<uuid:task_id>/skip")
def skip(task_id: uuid.UUID):
    """Skip the task: recorded on the enrollment's timeline, and the enrollment moves on."""
    return _finish(task_id, done=False)


def _finish(task_id: uuid.UUID, *, done: bool):
    task = finish_task(current_workspace(), task_id, done=done, reason=None if done else "skipped in the dashboard")
    message = f"{TASK_TYPES.get(task.type, 'Task')} {'done' if done else 'skipped'}: the contact moves on."
    # The action URL carries the list's filters, so the answer shows the list the user was looking at.
    filters = Filters.parse(request.args)
    if is_htmx():
        return hx_trigger(_page(filters), "toast", {"message": message, "level": "success"})
    flash(message, "success")
    return redirect(url_for("tasks.index", **filters.args()), 303)
