"""Enrolling contacts into campaigns, one or ten thousand at a time, and the changes a person
or a script makes to one enrollment (pause, resume, unenroll: see services/lifecycle.py).
Suppressed contacts are never enrolled, and a contact live in another campaign of the workspace
is skipped unless the request allows it (`allow_other_campaigns`): the rule is here, once, for
the API, the dashboard and the imports.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import contains_eager, joinedload

from webapp.engine import policy
from webapp.errors import Conflict, NotFound, ValidationFailed
from webapp.extensions import db
from webapp.models import CampaignEnrollment, CampaignEvent, CampaignInstance, Contact, Workspace, utcnow
from webapp.models.enums import EnrollmentStatus, InstanceStatus
from webapp.schemas.common import EMAIL_INVALID, EMAIL_NON_ASCII_LOCAL, EMAIL_REQUIRED
from webapp.schemas.contacts import ContactData
from webapp.schemas.enrollments import EnrollmentActionIn, EnrollmentIn
from webapp.schemas.validation import error_message
from webapp.services import lifecycle, merge_fields, replies
from webapp.services.bulk import bulk_insert, dialect_name, one_of
from webapp.services.contacts import contact_matches, suppress_contacts
from webapp.services.instances import first_active_step
from webapp.services.lookups import get_owned, paginate

_ITEMS = TypeAdapter(list[EnrollmentIn])
CONTACT_FIELDS = ("first_name", "last_name", "company", "title", "linkedin_url", "timezone")
IN_OTHER_CAMPAIGN = "in_other_campaign"
NAMED_CAMPAIGNS = 3  # a skipped item names at most this many of the other campaigns
SQLITE_CHECK_CHUNK = 30_000  # contact ids per query on SQLite (its limit is 32,766 parameters)


@dataclass
class EnrollmentReport:
    enrolled: int = 0
    already_enrolled: int = 0
    suppressed: int = 0
    in_other_campaign: int = 0
    contacts_created: int = 0
    # {index, problem} or {index, repeats: the index it repeats}; {index, row, reason} once worded.
    invalid: list[dict] = field(default_factory=list)
    # Valid items not enrolled for a reason of their own: {index, reason, detail}; the reason is
    # IN_OTHER_CAMPAIGN (as many as `in_other_campaign`), the detail names the other campaigns.
    skipped: list[dict] = field(default_factory=list)
    # contact id -> outcome ("enrolled", "already_enrolled", "suppressed", "in_other_campaign"),
    # for single enrollments.
    outcomes: dict = field(default_factory=dict)
    # contact id -> detail, for the contacts skipped as live in another campaign.
    details: dict = field(default_factory=dict)


def validate_items(items: list) -> tuple[list[tuple[int, EnrollmentIn]], list[dict]]:
    """Validate raw bulk items: (index, item) for the valid ones and {index, problem} for the rest.

    An item is `{"contact_id": ...}`, `{"contact": {...}}`, or the contact's fields themselves
    (`{"email": ..., "first_name": ...}`), as scripts naturally send it; each of the three may
    carry `allow_other_campaigns`. Shaping a plain contact is a few dict operations per item."""
    shaped, problems = [], {}
    for index, item in enumerate(items):
        result = _shaped(item)
        if isinstance(result, str):
            problems[index] = result
        else:
            shaped.append((index, result))
    try:
        parsed = _ITEMS.validate_python([item for _, item in shaped])
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            problems.setdefault(shaped[error["loc"][0]][0], _problem(error))
        shaped = [(index, item) for index, item in shaped if index not in problems]
        parsed = _ITEMS.validate_python([item for _, item in shaped])
    invalid = [{"index": index, "problem": problems[index]} for index in sorted(problems)]
    return [(index, item) for (index, _), item in zip(shaped, parsed, strict=True)], invalid


_CONTACT_KEYS = frozenset(ContactData.model_fields)
_FORMS = 'the contact\'s fields ({"email": ...}), "contact" or "contact_id"'
NO_CONTACT = f"give the contact as {_FORMS}"
MIXED_FORMS = f"give the contact once, as one of {_FORMS}"


def _shaped(item) -> dict | str:
    """The item as EnrollmentIn takes it, or the problem with its form."""
    if not isinstance(item, dict):
        return NO_CONTACT
    by_id, by_data = "contact_id" in item, "contact" in item
    if by_id or by_data:
        return MIXED_FORMS if (by_id and by_data) or not _CONTACT_KEYS.isdisjoint(item) else item
    if _CONTACT_KEYS.isdisjoint(item):
        return NO_CONTACT
    if "allow_other_campaigns" not in item:
        return {"contact": item}
    contact = dict(item)
    return {"allow_other_campaigns": contact.pop("allow_other_campaigns"), "contact": contact}


# What is wrong with an item, for people; the row is added by `worded`.
_EMAIL_PROBLEMS = {
    "missing": "email is required",
    EMAIL_REQUIRED: "email is required",
    EMAIL_INVALID: "email is not a valid address",
    EMAIL_NON_ASCII_LOCAL: "email has non-ASCII characters before the @, which mail servers cannot be relied on to "
    "deliver to (only the part after the @ may have them)",
}


def _problem(error: dict) -> str:
    """One pydantic error of an item, worded for people: the field as the plain contact names it."""
    loc = [str(part) for part in error["loc"][1:]]
    if loc[:1] == ["contact"] and len(loc) > 1:
        loc = loc[1:]
    field = ".".join(loc)
    if field == "email" and error["type"] in _EMAIL_PROBLEMS:
        return _EMAIL_PROBLEMS[error["type"]]
    if error["type"] == "missing":
        return f"{field} is required"
    if error["type"] == "extra_forbidden":
        return f"{field} is not a field of a contact"
    return f"{field}: {error_message(error)}" if field else error_message(error)


def worded(invalid: list[dict], rows: Sequence[int] | None = None) -> list[dict]:
    """The invalid items as the API, the paste report and the imports show them: {index, row,
    reason}, where `row` is the 1-based item number, or `rows[index]` (a CSV file's row numbers),
    and the reason names it: "row 2: email is not a valid address", "row 3 repeats row 1"."""

    def row(index: int) -> int:
        return rows[index] if rows is not None else index + 1

    return [
        {
            "index": item["index"],
            "row": row(item["index"]),
            "reason": f"row {row(item['index'])} repeats row {row(item['repeats'])}"
            if "repeats" in item
            else f"row {row(item['index'])}: {item['problem']}",
        }
        for item in sorted(invalid, key=lambda item: item["index"])
    ]


def enroll_contacts(
    workspace: Workspace,
    instance_id: uuid.UUID,
    items: list,
    *,
    allow_other_campaigns: bool = False,
    rows: Sequence[int] | None = None,
) -> EnrollmentReport:
    """Enroll up to 10,000 raw items (contact ids or contact data) into the instance.

    Contacts given by data are created, or updated by email. Suppressed contacts are
    counted and skipped; so are contacts live in another campaign of the workspace (each
    reported by index in `skipped`), unless `allow_other_campaigns` (or the item's own flag).
    Invalid items are reported by index and row (`rows`, else the item's 1-based number) with
    the reason (see `worded`), and everything else is enrolled in one transaction.
    """
    valid, invalid = validate_items(items)
    report = _enroll(workspace, instance_id, valid, invalid, allow_other_campaigns=allow_other_campaigns)
    report.invalid = worded(report.invalid, rows)
    db.session.commit()
    return report


def upsert_contact_items(
    workspace: Workspace, items: list, *, suppress: bool = False, rows: Sequence[int] | None = None
) -> EnrollmentReport:
    """Create or update contacts from raw items (contact data only), without enrolling them.

    With `suppress`, the contacts also go on the suppression list (status unsubscribed).
    Invalid items are reported as by `enroll_contacts`.
    """
    valid, invalid = validate_items(items)
    report = EnrollmentReport(invalid=list(invalid))
    contacts, seen = [], {}
    for index, item in valid:
        if item.contact is None:
            report.invalid.append({"index": index, "problem": "give the contact's email, not a contact_id"})
        elif item.contact.email in seen:
            report.invalid.append({"index": index, "repeats": seen[item.contact.email]})
        else:
            seen[item.contact.email] = index
            contacts.append(item.contact)
    upserted = _upsert_contacts(workspace, contacts) if contacts else []
    report.contacts_created = sum(1 for *_, created in upserted if created)
    if suppress:
        suppress_contacts(
            workspace,
            [contact_id for contact_id, *_ in upserted],
            status="unsubscribed",
            reason="imported suppression list",
            actor=lifecycle.Actor.IMPORTER,
        )
        report.suppressed = len(upserted)
    report.invalid = worded(report.invalid, rows)
    db.session.commit()
    return report


def enroll_contact(workspace: Workspace, instance_id: uuid.UUID, item: EnrollmentIn) -> CampaignEnrollment:
    """Enroll one contact. Conflict when it is suppressed, already enrolled, or live in another
    campaign (unless `item.allow_other_campaigns`); nothing is saved then."""
    report = _enroll(workspace, instance_id, [(0, item)], [])
    if report.invalid:
        raise NotFound(report.invalid[0]["problem"])
    ((contact_id, outcome),) = report.outcomes.items()
    if outcome == "suppressed":
        raise Conflict("Contact is suppressed (unsubscribed, bounced or complained) and cannot be enrolled.")
    if outcome == IN_OTHER_CAMPAIGN:
        detail = report.details[contact_id]
        raise Conflict(
            f"Contact is {detail}. To enroll it here as well, send allow_other_campaigns: true.",
            details=[{"field": "contact", "reason": IN_OTHER_CAMPAIGN, "message": detail}],
        )
    enrollment = db.session.scalar(
        sa.select(CampaignEnrollment)
        .options(joinedload(CampaignEnrollment.contact))
        .where(CampaignEnrollment.instance_id == instance_id, CampaignEnrollment.contact_id == contact_id)
    )
    if outcome == "already_enrolled":
        raise Conflict(
            "Contact is already enrolled in this campaign.",
            details=[{"field": "contact", "enrollment_id": str(enrollment.id)}],
        )
    db.session.commit()
    return enrollment


def _enroll(workspace, instance_id, valid, invalid, *, allow_other_campaigns: bool = False) -> EnrollmentReport:
    instance = get_owned(CampaignInstance, workspace, instance_id)
    if instance.status == InstanceStatus.COMPLETED:
        raise Conflict("The campaign is completed; contacts cannot be enrolled any more.")
    report = EnrollmentReport(invalid=list(invalid))
    by_email: dict[str, int] = {}
    by_id: dict[uuid.UUID, int] = {}
    data_rows: list[tuple[int, EnrollmentIn]] = []
    for index, item in valid:
        if item.contact is not None:
            if item.contact.email in by_email:
                report.invalid.append({"index": index, "repeats": by_email[item.contact.email]})
                continue
            by_email[item.contact.email] = index
            data_rows.append((index, item))
        else:
            if item.contact_id in by_id:
                report.invalid.append({"index": index, "repeats": by_id[item.contact_id]})
                continue
            by_id[item.contact_id] = index

    resolved: dict[uuid.UUID, tuple[int, str]] = {}  # contact id -> (item index, contact status)
    if data_rows:
        for contact_id, _email, status, created in _upsert_contacts(workspace, [item.contact for _, item in data_rows]):
            resolved[contact_id] = (by_email[_email], status)
            report.contacts_created += int(created)
    if by_id:
        found = {}
        ids = list(by_id)
        for start in range(0, len(ids), 1000):
            rows = db.session.execute(
                sa.select(Contact.id, Contact.status).where(
                    Contact.workspace_id == workspace.id, Contact.id.in_(ids[start : start + 1000])
                )
            )
            found.update({row.id: row.status for row in rows})
        for contact_id, index in by_id.items():
            if contact_id not in found:
                report.invalid.append({"index": index, "problem": f"contact {contact_id} not found"})
            elif contact_id in resolved:
                report.invalid.append({"index": index, "repeats": resolved[contact_id][0]})
            else:
                resolved[contact_id] = (index, found[contact_id])

    eligible = []
    for contact_id, (_index, status) in resolved.items():
        if status != "subscribed":
            report.suppressed += 1
            report.outcomes[contact_id] = "suppressed"
        else:
            eligible.append(contact_id)
    if not allow_other_campaigns:
        allowed = {index for index, item in valid if item.allow_other_campaigns}
        checked = [contact_id for contact_id in eligible if resolved[contact_id][0] not in allowed]
        elsewhere = _live_elsewhere(workspace, instance, checked)
        for contact_id, names in elsewhere.items():
            detail = _campaigns_detail(names)
            report.skipped.append({"index": resolved[contact_id][0], "reason": IN_OTHER_CAMPAIGN, "detail": detail})
            report.outcomes[contact_id] = IN_OTHER_CAMPAIGN
            report.details[contact_id] = detail
        report.in_other_campaign = len(elsewhere)
        eligible = [contact_id for contact_id in eligible if contact_id not in elsewhere]
    inserted = set(_insert_enrollments(workspace, instance, eligible))
    for contact_id in eligible:
        report.outcomes[contact_id] = "enrolled" if contact_id in inserted else "already_enrolled"
    report.enrolled = len(inserted)
    report.already_enrolled = len(eligible) - len(inserted)
    report.skipped.sort(key=lambda item: item["index"])
    return report


def _live_elsewhere(workspace: Workspace, instance: CampaignInstance, contact_ids: list) -> dict[uuid.UUID, list]:
    """Of `contact_ids`, those live (lifecycle.LIVE) in another campaign of the workspace, with
    the names of those campaigns. A contact enrolled in `instance` itself (in any status) is left
    out: it stays `already_enrolled`. One query for the whole batch on PostgreSQL (the ids as one
    array, served by the contact_id index); on SQLite one per SQLITE_CHECK_CHUNK contacts.
    """
    if not contact_ids:
        return {}
    size = len(contact_ids) if dialect_name() == "postgresql" else SQLITE_CHECK_CHUNK
    here: set[uuid.UUID] = set()
    names: dict[uuid.UUID, set[str]] = {}
    for start in range(0, len(contact_ids), size):
        rows = db.session.execute(
            sa.select(CampaignEnrollment.contact_id, CampaignEnrollment.instance_id, CampaignInstance.name)
            .join(CampaignInstance, CampaignInstance.id == CampaignEnrollment.instance_id)
            .where(
                CampaignEnrollment.workspace_id == workspace.id,
                one_of(CampaignEnrollment.contact_id, contact_ids[start : start + size]),
                sa.or_(
                    CampaignEnrollment.instance_id == instance.id,
                    CampaignEnrollment.status.in_(sorted(lifecycle.LIVE)),
                ),
            )
        )
        for contact_id, instance_id, name in rows:
            if instance_id == instance.id:
                here.add(contact_id)
            else:
                names.setdefault(contact_id, set()).add(name)
    return {contact_id: sorted(found) for contact_id, found in names.items() if contact_id not in here}


def _campaigns_detail(names: list[str]) -> str:
    """`live in campaign 'Q3 outreach'`, or several campaigns' names (a few, then how many more)."""
    if len(names) == 1:
        return f"live in campaign '{names[0]}'"
    shown = ", ".join(f"'{name}'" for name in names[:NAMED_CAMPAIGNS])
    more = len(names) - NAMED_CAMPAIGNS
    return f"live in campaigns {shown}" + (f" and {more} more" if more > 0 else "")


# PostgreSQL's `jsonb || jsonb` on SQLite: the given custom fields replace the stored ones key by
# key (json_patch would merge nested objects and drop keys given as null).
_SQLITE_MERGED_FIELDS = sa.text(
    """(SELECT json_group_object(key, CASE type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false')
        WHEN 'object' THEN json(value) WHEN 'array' THEN json(value) ELSE value END)
    FROM (SELECT key, value, type FROM json_each(contacts.custom_fields)
            WHERE key NOT IN (SELECT key FROM json_each(excluded.custom_fields))
          UNION ALL SELECT key, value, type FROM json_each(excluded.custom_fields)))"""
)


def _upsert_contacts(workspace: Workspace, contacts: list) -> list[tuple]:
    """Create or update contacts by email; returns (id, email, status, created) per contact."""
    now = utcnow()
    rows = []
    for data in contacts:
        given = data.model_fields_set
        row = {"id": uuid.uuid4(), "workspace_id": workspace.id, "email": data.email}
        for name in CONTACT_FIELDS:
            row[name] = getattr(data, name) if name in given else None
        row["custom_fields"] = data.custom_fields or {}
        row["status"] = "subscribed"
        row["created_at"] = now
        row["updated_at"] = now
        rows.append(row)
    postgres = dialect_name() == "postgresql"

    def update(current, excluded):
        merged = current.custom_fields.op("||")(excluded.custom_fields) if postgres else _SQLITE_MERGED_FIELDS
        values = {name: sa.func.coalesce(getattr(excluded, name), getattr(current, name)) for name in CONTACT_FIELDS}
        return {**values, "custom_fields": merged, "updated_at": excluded.updated_at}

    table = Contact.__table__
    returned = bulk_insert(
        table,
        rows,
        conflict=("workspace_id", "email"),
        update=update,
        returning=(table.c.id, table.c.email, table.c.status, table.c.created_at),
    )
    return [(row.id, row.email, row.status, row.created_at == now) for row in returned]


def _insert_enrollments(workspace: Workspace, instance: CampaignInstance, contact_ids: list) -> list[uuid.UUID]:
    if not contact_ids:
        return []
    now = utcnow()
    status, next_action_at = lifecycle.initial_status(instance.status), None
    if status == EnrollmentStatus.ACTIVE:
        step = first_active_step(instance)
        next_action_at = policy.step_due(now, step) if step else now
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace.id,
            "instance_id": instance.id,
            "contact_id": contact_id,
            "status": status,
            "current_step": 0,
            "next_action_at": next_action_at,
            "enrolled_at": now,
            "updated_at": now,
        }
        for contact_id in contact_ids
    ]
    table = CampaignEnrollment.__table__
    return [
        row.contact_id
        for row in bulk_insert(table, rows, conflict=("instance_id", "contact_id"), returning=(table.c.contact_id,))
    ]


def get_enrollment(workspace: Workspace, enrollment_id: uuid.UUID) -> CampaignEnrollment:
    enrollment = db.session.scalar(
        sa.select(CampaignEnrollment)
        .options(joinedload(CampaignEnrollment.contact))
        .where(CampaignEnrollment.id == enrollment_id, CampaignEnrollment.workspace_id == workspace.id)
    )
    if enrollment is None:
        raise NotFound(f"Enrollment {enrollment_id} not found.")
    return enrollment


SORTS = {
    "enrolled_at": CampaignEnrollment.enrolled_at,
    "status": CampaignEnrollment.status,
    "next_action_at": CampaignEnrollment.next_action_at,
    "email": Contact.email,
}


def enrollment_filter(
    instance: CampaignInstance, *, status: str | None = None, search: str | None = None, missing: str | None = None
) -> list[sa.ColumnElement[bool]]:
    """The conditions of the enrollments list's filters, shared by the list and its CSV export.
    A search or `missing` names contact columns: the query joins Contact."""
    conditions = [CampaignEnrollment.instance_id == instance.id]
    if status:
        conditions.append(CampaignEnrollment.status == status)
    if search:
        conditions.append(contact_matches(search))
    if missing:
        conditions.append(merge_fields.lacks_value(missing))
    return conditions


def list_enrollments(
    workspace: Workspace,
    instance_id: uuid.UUID,
    *,
    status: str | None = None,
    search: str | None = None,
    sort: str = "-enrolled_at",
    page: int = 1,
    limit: int = 20,
    missing: str | None = None,
) -> tuple[list[CampaignEnrollment], int]:
    """One page of an instance's enrollments with their contacts, and the total.

    With 100,000 enrollments this stays fast: the default order walks the
    (instance_id, enrolled_at, id) index, and the total counts enrollments without joining
    contacts unless a search needs them. `missing` keeps the contacts with no value for that merge
    field (see services/merge_fields.py), as the launch check counts them.
    """
    instance = get_owned(CampaignInstance, workspace, instance_id)
    conditions = enrollment_filter(instance, status=status, search=search, missing=missing)
    by_contact = bool(search or missing)
    count = sa.select(sa.func.count()).select_from(CampaignEnrollment).where(*conditions)
    if by_contact:
        count = count.join(Contact, Contact.id == CampaignEnrollment.contact_id)
    total = db.session.scalar(count)
    column = SORTS[sort.lstrip("-")]
    descending = sort.startswith("-")
    # The id tie-break follows the sort direction, so one index serves both directions.
    order = (column.desc(), CampaignEnrollment.id.desc()) if descending else (column.asc(), CampaignEnrollment.id)
    offset = (page - 1) * limit
    joined = sa.select(CampaignEnrollment).join(Contact, Contact.id == CampaignEnrollment.contact_id)
    if column.class_ is Contact:
        # An address is unique in the workspace and enrolled once per campaign, so it needs no
        # tie-break, and the (workspace_id, email) index can give the order without a sort.
        order = order[:1]
        conditions.append(Contact.workspace_id == workspace.id)
    if by_contact or column.class_ is Contact:
        query = joined.where(*conditions).limit(limit).offset(offset)
    else:
        # The page's ids first, from the enrollments' index alone; contacts are joined for those
        # rows only (a deep page would otherwise join every row it skips).
        ids = sa.select(CampaignEnrollment.id).where(*conditions).order_by(*order).limit(limit).offset(offset)
        query = joined.where(CampaignEnrollment.id.in_(ids.scalar_subquery()))
    query = query.options(contains_eager(CampaignEnrollment.contact)).order_by(*order)
    return list(db.session.scalars(query)), total


def change_enrollment_status(
    workspace: Workspace, enrollment_id: uuid.UUID, status: str, *, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> CampaignEnrollment:
    """Pause (from enrolled or active), resume (from paused) or mark replied (from any live
    status) one enrollment; InvalidTransition (409) from any other status. A resumed enrollment
    whose step was due meanwhile is due now."""
    enrollment = get_owned(CampaignEnrollment, workspace, enrollment_id)
    now = utcnow()
    if status == EnrollmentStatus.REPLIED:
        replies.mark_replied(workspace, enrollment_id, actor=actor, now=now)
        return get_enrollment(workspace, enrollment.id)
    if status == EnrollmentStatus.PAUSED:
        lifecycle.change_one(enrollment, "pause", actor=actor, reason=lifecycle.Reason.PAUSED, now=now)
    elif status == EnrollmentStatus.ACTIVE:
        instance = db.session.get(CampaignInstance, enrollment.instance_id)
        target = lifecycle.resume_status(instance.status)
        due = enrollment.next_action_at
        if target == EnrollmentStatus.ACTIVE and (due is None or due < now):
            due = now
        lifecycle.change_one(
            enrollment, "resume", actor=actor, to=target, reason=lifecycle.Reason.RESUMED, now=now, next_action_at=due
        )
    else:
        raise ValidationFailed("status must be paused, active or replied.")
    db.session.commit()
    return get_enrollment(workspace, enrollment.id)


MAX_MOVE = 10_000  # a move enrolls in the other campaign; more than this: narrow the filter and repeat


@dataclass
class ActionReport:
    action: str
    matched: int = 0
    changed: int = 0
    skipped: int = 0
    results: list[dict] = field(default_factory=list)


def act_on_enrollments(
    workspace: Workspace, instance_id: uuid.UUID, data: EnrollmentActionIn, *, actor: lifecycle.Actor
) -> ActionReport:
    """Pause, resume, unenroll, mark replied or move to another campaign the enrollments listed (or
    every one the filter matches), in one transaction; each through the lifecycle, so an
    enrollment not in a status the action applies to is skipped, not changed. Set-based: one
    statement per action whatever the number. Commits."""
    instance = get_owned(CampaignInstance, workspace, instance_id)
    now = utcnow()
    if data.enrollment_ids is not None:
        wanted = list(dict.fromkeys(uuid.UUID(str(value)) for value in data.enrollment_ids))
        scope = [CampaignEnrollment.instance_id == instance.id, one_of(CampaignEnrollment.id, wanted)]
    else:
        wanted, chosen = None, data.filter
        conditions = enrollment_filter(instance, status=chosen.status, search=chosen.search, missing=chosen.missing)
        found = sa.select(CampaignEnrollment.id).join(Contact, Contact.id == CampaignEnrollment.contact_id)
        scope = [CampaignEnrollment.instance_id == instance.id, CampaignEnrollment.id.in_(found.where(*conditions))]
    statuses = dict(db.session.execute(sa.select(CampaignEnrollment.id, CampaignEnrollment.status).where(*scope)).all())
    changed = set(_act(workspace, instance, data, scope, statuses, now, actor))
    db.session.commit()
    report = ActionReport(action=data.action, matched=len(statuses), changed=len(changed))
    report.skipped = report.matched - report.changed
    for enrollment_id in wanted or ():
        if enrollment_id in changed:
            report.results.append({"enrollment_id": enrollment_id, "outcome": "changed"})
        elif enrollment_id in statuses:
            reason = f"it is {statuses[enrollment_id]}"
            report.results.append({"enrollment_id": enrollment_id, "outcome": "skipped", "reason": reason})
        else:
            report.results.append(
                {"enrollment_id": enrollment_id, "outcome": "not_found", "reason": "not in this campaign"}
            )
    return report


def _act(workspace, instance, data, scope, statuses, now, actor) -> list[uuid.UUID]:
    if data.action == "pause":
        return lifecycle.change("pause", actor=actor, where=scope, reason=lifecycle.Reason.PAUSED, now=now)
    if data.action == "resume":
        target = lifecycle.resume_status(instance.status)
        values = {}
        if target == EnrollmentStatus.ACTIVE:  # a step due meanwhile is due now
            due = CampaignEnrollment.next_action_at
            values["next_action_at"] = sa.case((sa.or_(due.is_(None), due < now), now), else_=due)
        return lifecycle.change(
            "resume", actor=actor, where=scope, to=target, reason=lifecycle.Reason.RESUMED, now=now, **values
        )
    if data.action == "unenroll":
        return lifecycle.change("remove", actor=actor, where=scope, reason=lifecycle.Reason.UNENROLLED, now=now)
    if data.action == "mark_replied":
        return replies.mark_many_replied(workspace, scope, actor=actor, now=now)
    if data.target_instance_id is None:
        raise Conflict("Choose the campaign to move them to (target_instance_id).")
    return _move(workspace, instance, uuid.UUID(str(data.target_instance_id)), scope, statuses, now, actor)


def _move(workspace, instance, target_id: uuid.UUID, scope, statuses, now, actor) -> list[uuid.UUID]:
    """Enroll the live ones' contacts in the target campaign, then end them here (unenrolled, the
    reason naming the target). A contact the target cannot take (suppressed) stays."""
    target = get_owned(CampaignInstance, workspace, target_id)
    if target.id == instance.id:
        raise Conflict("The enrollments are in this campaign already: choose another one.")
    live = [enrollment_id for enrollment_id, status in statuses.items() if status in lifecycle.LIVE]
    if len(live) > MAX_MOVE:
        raise Conflict(f"{len(live):,} enrollments to move: move at most {MAX_MOVE:,} at a time (narrow the filter).")
    contacts = dict(
        db.session.execute(
            sa.select(CampaignEnrollment.id, CampaignEnrollment.contact_id).where(
                *scope, CampaignEnrollment.id.in_(live)
            )
        ).all()
    )
    items = [(index, EnrollmentIn(contact_id=contact_id)) for index, contact_id in enumerate(contacts.values())]
    report = _enroll(workspace, target.id, items, [], allow_other_campaigns=True)
    taken = {contact for contact, outcome in report.outcomes.items() if outcome in ("enrolled", "already_enrolled")}
    moving = [enrollment_id for enrollment_id, contact_id in contacts.items() if contact_id in taken]
    reason = lifecycle.reason_text(lifecycle.Reason.UNENROLLED, f"moved to {target.name}")
    return lifecycle.change("remove", actor=actor, ids=moving, reason=reason, now=now)


def waits_on_time(enrollment: CampaignEnrollment, now: datetime | None = None) -> bool:
    """Whether the enrollment's next step waits for a time that `skip_wait` can bring forward."""
    return (
        enrollment.status == EnrollmentStatus.ACTIVE
        and enrollment.next_action_at is not None
        and enrollment.next_action_at > (now or utcnow())
    )


def skip_wait(
    workspace: Workspace, enrollment_id: uuid.UUID, *, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> CampaignEnrollment:
    """Make an active enrollment's next step due now: the step's delay, an out-of-office wait or
    a wait the worker chose are skipped; the send window, caps and gaps still apply when it goes.
    Conflict when it is not active or its next step is not waiting on a time (it is being sent,
    or waits for a task)."""
    enrollment = get_owned(CampaignEnrollment, workspace, enrollment_id, lock=True)
    if enrollment.status != EnrollmentStatus.ACTIVE:
        raise Conflict(f"Only an active enrollment waits for its next step; this one is {enrollment.status}.")
    if enrollment.next_action_at is None:
        raise Conflict("Its next step is not waiting on a time: it is being sent, or waits for a task.")
    now = utcnow()
    if waits_on_time(enrollment, now):
        enrollment.next_action_at, enrollment.wait_reason, enrollment.updated_at = now, None, now
    db.session.commit()
    return get_enrollment(workspace, enrollment.id)


def unenroll(
    workspace: Workspace, enrollment_id: uuid.UUID, *, actor: lifecycle.Actor = lifecycle.Actor.PERSON
) -> CampaignEnrollment:
    """Remove a live enrollment (final). Its history stays."""
    enrollment = get_owned(CampaignEnrollment, workspace, enrollment_id)
    lifecycle.change_one(enrollment, "remove", actor=actor, reason=lifecycle.Reason.UNENROLLED)
    db.session.commit()
    return get_enrollment(workspace, enrollment.id)


def list_enrollment_events(
    workspace: Workspace, enrollment_id: uuid.UUID, *, page: int = 1, limit: int = 50
) -> tuple[list[CampaignEvent], int]:
    enrollment = get_owned(CampaignEnrollment, workspace, enrollment_id)
    query = (
        sa.select(CampaignEvent)
        .where(CampaignEvent.enrollment_id == enrollment.id)
        .order_by(CampaignEvent.occurred_at, CampaignEvent.id)
    )
    return paginate(query, page=page, limit=limit)
