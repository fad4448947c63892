"""The overview page: where a signed-in user lands."""

from flask import Blueprint, request

from webapp.htmx import render
from webapp.models import utcnow
from webapp.security import current_workspace, require_login
from webapp.services.analytics import WorkspaceOverview, workspace_overview
from webapp.services.tasks import list_tasks
from webapp.web.tasks import TASK_TYPES

bp = Blueprint("dashboard", __name__)
bp.before_request(require_login)

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
TASKS_SHOWN = 5


@bp.get("/")
def index():
    """The workspace at a glance: numbers, daily chart, campaigns needing attention, today's tasks."""
    workspace = current_workspace()
    days = request.args.get("days", type=int)
    days = days if days in PERIODS else DEFAULT_PERIOD
    now = utcnow()
    overview = workspace_overview(workspace, days=days, now=now)
    tasks, tasks_total = list_tasks(workspace, due="today", limit=TASKS_SHOWN, now=now)
    return render(
        "dashboard/index.html",
        block="overview_numbers",
        workspace=workspace,
        overview=overview,
        chart=daily_chart(overview),
        periods=PERIODS,
        tasks=tasks,
        tasks_total=tasks_total,
        task_types=TASK_TYPES,
        now=now,
    )


def daily_chart(overview: WorkspaceOverview) -> dict:
    """The daily series as the JSON that static/js/charts.js draws (the campaign pages' shape)."""
    series = (("sent", "Sent"), ("replied", "Replies"), ("bounced", "Bounces"), ("unsubscribed", "Unsubscribes"))
    return {
        "kind": "line",
        "labels": [day.date.isoformat() for day in overview.daily],
        "series": [
            {"key": key, "label": label, "data": [getattr(day, key) for day in overview.daily]} for key, label in series
        ],
    }
