"""The Inbox: replies and out-of-office answers the mailboxes heard, newest first, each with the
contact, campaign and step it answers; a person gives each reply a lead status."""

import uuid
from dataclasses import dataclass

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for

from webapp.htmx import hx_trigger, is_htmx, render
from webapp.schemas.replies import ReplyUpdate
from webapp.security import current_workspace, require_login
from webapp.services import replies
from webapp.services.instances import list_instances
from webapp.web.forms import parse_form
from webapp.web.listing import choice, page_arg, query_args, uuid_arg

bp = Blueprint("inbox", __name__)
bp.before_request(require_login)

LEAD_STATUSES = {
    "interested": "Interested",
    "meeting_booked": "Meeting booked",
    "not_interested": "Not interested",
    "wrong_person": "Wrong person",
}
LEAD_FILTERS = {**LEAD_STATUSES, "none": "No status yet"}
KINDS = {"reply": "Replies", "auto_reply": "Auto-replies", "bounce": "Bounces", "other": "Other messages"}
KIND_LABELS = {"reply": "Reply", "auto_reply": "Auto-reply", "bounce": "Bounce", "other": "Message"}
PER_PAGE = 25
CAMPAIGNS_IN_FILTER = 200


@dataclass(frozen=True)
class Filters:
    """The list's query string; unknown values are ignored (they come from editable URLs)."""

    lead: str | None = None
    kind: str | None = None
    campaign: uuid.UUID | None = None
    unmatched: bool = False
    page: int = 1

    @classmethod
    def parse(cls, values) -> "Filters":
        return cls(
            choice(values, "lead", LEAD_FILTERS),
            choice(values, "kind", KINDS),
            uuid_arg(values, "campaign"),
            values.get("unmatched") == "1",
            page_arg(values),
        )

    @property
    def any(self) -> bool:
        return bool(self.lead or self.kind or self.campaign or self.unmatched)

    def args(self) -> dict:
        return query_args(
            lead=self.lead, kind=self.kind, campaign=self.campaign, unmatched=self.unmatched, page=self.page
        )


def _list(filters: Filters):
    workspace = current_workspace()
    query = {
        "kind": filters.kind,
        "lead_status": filters.lead,
        "instance_id": filters.campaign,
        "matched": False if filters.unmatched else None,
        "limit": PER_PAGE,
    }
    rows, total = replies.list_replies(workspace, page=filters.page, **query)
    pages = max(1, -(-total // PER_PAGE))
    campaigns, _ = list_instances(workspace, limit=CAMPAIGNS_IN_FILTER)
    return render(
        "inbox/index.html",
        block="reply_list",
        items=[replies.view(row) for row in rows],
        total=total,
        pages=pages,
        filters=filters,
        campaign_choices=[(str(c.id), c.name) for c in campaigns],
        lead_statuses=LEAD_STATUSES,
        lead_filters=list(LEAD_FILTERS.items()),
        kinds=list(KINDS.items()),
        kind_labels=KIND_LABELS,
    )


@bp.get("/inbox")
def index():
    """Replies and auto-replies across campaigns, filtered by lead status, kind and campaign."""
    return _list(Filters.parse(request.args))


@bp.post("/inbox/<uuid:reply_id>/lead")
def set_lead(reply_id: uuid.UUID):
    """Give a reply a lead status (an empty value clears it)."""
    value = parse_form(ReplyUpdate, {"lead_status": request.form.get("lead_status") or None}).lead_status
    item = replies.view(replies.set_lead_status(current_workspace(), reply_id, value))
    who = item["contact_email"] or item["from_email"] or "the sender"
    message = f"{who}: {LEAD_STATUSES[value].lower() if value else 'no lead status'}."
    if is_htmx():
        response = make_response(
            render_template(
                "inbox/_row.html",
                item=item,
                lead_statuses=LEAD_STATUSES,
                kind_labels=KIND_LABELS,
                filters=Filters.parse(request.args),
            )
        )
        return hx_trigger(response, "toast", {"message": message, "level": "success"})
    flash(message, "success")
    return redirect(url_for("inbox.index", **Filters.parse(request.args).args()), 303)
