"""The launch check: what would keep a campaign from sending, or surprise its owner, found before launch.

One report for the API (`GET /instances/:id/readiness`), the campaign page and the launch itself
(`services.instances` refuses a launch with blocking problems, and one with warnings unless the
person confirmed them). Blocking problems make every send fail or wait forever; warnings concern
some contacts only, or are choices a person may have made on purpose.

It costs a handful of queries whatever the number of enrollments: contacts are counted in SQL,
and messages are rendered once per combination of filled and empty fields that occurs among the
contacts (not once per contact).
"""

import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from webapp.engine import mailer, policy, render
from webapp.extensions import db
from webapp.models import (
    CampaignEnrollment,
    CampaignInstance,
    CampaignTemplate,
    Contact,
    Mailbox,
    SequenceStep,
    Workspace,
    utcnow,
)
from webapp.models.enums import Channel, ContactStatus, EnrollmentStatus, InstanceStatus, MailboxState
from webapp.models.template import in_thread
from webapp.services import lifecycle, merge_fields
from webapp.services.lookups import get_owned
from webapp.services.sending import settings as sending_settings

# The contact time zones the window is tried in (the most common ones), besides the campaign's.
MAX_ZONES = 20
NAMED_CAMPAIGNS = 3
MISSING_DATA_REASONS = 5
# What a filled field holds while a message is rendered for a group of contacts.
_SAMPLE = "sample"
_UNSUBSCRIBE = "https://unsubscribe.invalid/readiness-check"


@dataclass
class Problem:
    code: str
    message: str
    count: int | None = None  # contacts concerned, when the problem is theirs
    details: dict | None = None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Readiness:
    blocking: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.blocking

    def error_details(self) -> list[dict]:
        """The problems as the error envelope's `details`, each with its severity."""
        return [{**p.as_dict(), "severity": "blocking"} for p in self.blocking] + [
            {**p.as_dict(), "severity": "warning"} for p in self.warnings
        ]


def check_readiness(workspace: Workspace, instance_id: uuid.UUID, *, now: datetime | None = None) -> Readiness:
    """The launch check of the workspace's campaign `instance_id` (NotFound for another's)."""
    return readiness_of(workspace, get_owned(CampaignInstance, workspace, instance_id), now=now)


def readiness_of(workspace: Workspace, instance: CampaignInstance, *, now: datetime | None = None) -> Readiness:
    """The launch check of `instance`, loaded already (the launch holds its row lock). Reads only."""
    now = now or utcnow()
    report = Readiness()
    steps = list(
        db.session.scalars(
            sa.select(SequenceStep)
            .where(SequenceStep.template_id == instance.template_id, SequenceStep.is_active.is_(True))
            .order_by(SequenceStep.position)
        )
    )
    if not steps:
        report.blocking.append(Problem("no_steps", "The template has no active steps; add a step before launching."))
    emails = [step for step in steps if step.channel == Channel.EMAIL]
    settings = _settings(report, workspace, instance)
    sender_name = _check_sender(report, workspace, settings) if settings and emails else None
    if settings is not None:
        _check_window(report, instance, settings, now)
    _check_contacts(report, workspace, instance)
    _check_messages(report, instance, emails, sender_name)
    return report


def _settings(report: Readiness, workspace: Workspace, instance: CampaignInstance):
    template_settings = db.session.scalar(
        sa.select(CampaignTemplate.settings).where(CampaignTemplate.id == instance.template_id)
    )
    try:
        return sending_settings.merge(workspace.settings, template_settings, instance.settings)
    except sending_settings.InvalidSettings as exc:
        values = sending_settings.merged_values(workspace.settings, template_settings, instance.settings)
        try:
            policy.parse_window(values.get("send_window"))
        except ValueError as window:
            report.blocking.append(
                Problem("window_never_opens", f"The send window never opens: {window}. Fix it in the settings.")
            )
        else:
            report.blocking.append(Problem("invalid_settings", f"The campaign's settings are invalid: {exc}."))
        return None


def _check_sender(report: Readiness, workspace: Workspace, settings: sending_settings.Effective) -> str | None:
    """Who the emails come from: an active mailbox of the campaign's, or the default sender
    (the settings' `from_email`, else MAIL_FROM). Returns the sender's name, as messages get it."""
    wanted = settings.mailbox_ids
    if not wanted:
        try:
            mailer.parse_address((settings.sender.name, settings.sender.address))
        except mailer.MessageError as exc:
            report.blocking.append(
                Problem(
                    "no_sender",
                    "There is no sender to send from: choose mailboxes for the campaign, or set a From address "
                    f"in Settings (sender defaults) or MAIL_FROM ({exc}).",
                )
            )
        return settings.sender.name or None
    found = {
        row.id: row
        for row in db.session.execute(
            sa.select(Mailbox.id, Mailbox.name, Mailbox.from_name, Mailbox.state).where(
                Mailbox.workspace_id == workspace.id, Mailbox.id.in_(wanted)
            )
        )
    }
    active = [row for row in found.values() if row.state == MailboxState.ACTIVE]
    idle = [
        {"id": str(mailbox_id), "name": found[mailbox_id].name if mailbox_id in found else None,
         "state": found[mailbox_id].state if mailbox_id in found else "deleted"}
        for mailbox_id in wanted
        if mailbox_id not in found or found[mailbox_id].state != MailboxState.ACTIVE
    ]  # fmt: skip
    if not active:
        report.blocking.append(
            Problem(
                "no_sender",
                "None of the campaign's mailboxes is active (paused, failing or deleted): fix or resume one "
                "in Mailboxes, or choose others.",
                details={"mailboxes": idle},
            )
        )
        return settings.sender.name or None
    if idle:
        names = ", ".join(m["name"] or m["id"] for m in idle)
        report.warnings.append(
            Problem(
                "mailboxes_unavailable",
                f"{len(idle)} of the campaign's {len(wanted)} mailboxes cannot send ({names}): "
                "the contacts they get wait until they can.",
                count=len(idle),
                details={"mailboxes": idle},
            )
        )
    names = [row.from_name or settings.sender.name for row in active]
    return names[0] if all(names) else None


def _check_window(report: Readiness, instance: CampaignInstance, settings: sending_settings.Effective, now) -> None:
    """The send window opens for the campaign's own zone and for its contacts' most common zones
    (the policy decides, exactly as for the sends)."""
    zones = list(
        db.session.scalars(
            sa.select(Contact.timezone)
            .join(CampaignEnrollment, CampaignEnrollment.contact_id == Contact.id)
            .where(*_live_here(instance), Contact.timezone.is_not(None))
            .group_by(Contact.timezone)
            .order_by(sa.func.count().desc(), Contact.timezone)
            .limit(MAX_ZONES)
        )
    )
    never = []
    for zone in [None, *zones]:
        try:
            policy.plan(now, now=now, rules=settings.rules, contact_timezone=zone)
        except policy.NoSendTime:
            never.append(zone or str(settings.rules.contact_zone(None)))
    if never:
        report.blocking.append(
            Problem(
                "window_never_opens",
                f"The send window never opens within {policy.HORIZON_DAYS} days (in {', '.join(never)}): "
                "widen its days or hours, or check the holidays.",
                details={"timezones": never},
            )
        )


def _live_here(instance: CampaignInstance) -> tuple:
    return (CampaignEnrollment.instance_id == instance.id, CampaignEnrollment.status.in_(sorted(lifecycle.LIVE)))


def _check_contacts(report: Readiness, workspace: Workspace, instance: CampaignInstance) -> None:
    """Suppressed contacts (never sent to) and contacts live in another campaign too."""
    suppressed = dict(
        db.session.execute(
            sa.select(Contact.status, sa.func.count())
            .join(CampaignEnrollment, CampaignEnrollment.contact_id == Contact.id)
            .where(*_live_here(instance), Contact.status != ContactStatus.SUBSCRIBED)
            .group_by(Contact.status)
        ).all()
    )
    if suppressed:
        total = sum(suppressed.values())
        report.warnings.append(
            Problem(
                "suppressed_contacts",
                f"{_contacts(total)} {'is' if total == 1 else 'are'} suppressed (unsubscribed, bounced or "
                "complained): nothing is sent to them.",
                count=total,
                details={"by_status": suppressed},
            )
        )
    other = aliased(CampaignEnrollment)
    elsewhere = (
        sa.select(other.instance_id)
        .where(
            other.contact_id == CampaignEnrollment.contact_id,
            other.workspace_id == workspace.id,
            other.instance_id != instance.id,
            other.status.in_(sorted(lifecycle.LIVE)),
        )
        .exists()
    )
    count = db.session.scalar(
        sa.select(sa.func.count()).select_from(CampaignEnrollment).where(*_live_here(instance), elsewhere)
    )
    if count:
        names = list(
            db.session.scalars(
                sa.select(CampaignInstance.name)
                .join(other, other.instance_id == CampaignInstance.id)
                .where(
                    other.workspace_id == workspace.id,
                    other.instance_id != instance.id,
                    other.status.in_(sorted(lifecycle.LIVE)),
                    other.contact_id.in_(sa.select(CampaignEnrollment.contact_id).where(*_live_here(instance))),
                )
                .group_by(CampaignInstance.name)
                .order_by(CampaignInstance.name)
                .limit(NAMED_CAMPAIGNS + 1)
            )
        )
        shown = ", ".join(f"“{name}”" for name in names[:NAMED_CAMPAIGNS]) + (
            " and more" if len(names) > NAMED_CAMPAIGNS else ""
        )
        report.warnings.append(
            Problem(
                "in_other_campaigns",
                f"{_contacts(count)} {'is' if count == 1 else 'are'} live in another campaign too ({shown}): "
                "they will get both sequences.",
                count=count,
                details={"campaigns": names[:NAMED_CAMPAIGNS]},
            )
        )


def _check_messages(
    report: Readiness, instance: CampaignInstance, emails: list[SequenceStep], sender_name: str | None
) -> None:
    """Each email step rendered for every combination of filled and empty fields found among the
    contacts (counted in SQL): the fields that have no value and no default for some of them, and
    an unsubscribe link that some would not get."""
    usable, used = [], {}
    for step in emails:
        try:
            names = render.variables_used(step.subject or "") | render.variables_used(step.body or "")
        except render.TemplateError as exc:
            report.blocking.append(
                Problem("invalid_template", f"Step {step.position} cannot be rendered: {exc.message}",
                        details={"step": step.position})
            )  # fmt: skip
            continue
        usable.append(step)
        used.update(dict.fromkeys(sorted(names)))
    if emails and in_thread(emails[0]):
        report.blocking.append(
            Problem(
                "no_subject",
                f"Step {emails[0].position}, the first email, has no subject (it would answer an earlier email "
                "that no contact got): give it one.",
                details={"step": emails[0].position},
            )
        )
    if not usable:
        return
    fields = [name for name in used if merge_fields.is_contact_field(name) and name not in ("email", "full_name")]
    if "full_name" in used:  # derived from first and last name
        fields += [name for name in ("first_name", "last_name") if name not in fields]
    missing: Counter[str] = Counter()
    missing_steps: dict[str, set[int]] = {}
    no_link: Counter[int] = Counter()
    no_sender_name: set[int] = set()
    contacts_missing = 0
    groups = _presence_groups(instance, fields)
    for present, count in groups or [(frozenset(fields), 0)]:
        context = _sample_context(present, sender_name)
        lacking: set[str] = set()
        for step in usable:
            subject = "" if step is not usable[0] and in_thread(step) else step.subject or ""
            try:
                rendered = render.render_message(subject, step.body or "", context, html=False)
            except render.UnresolvedVariable as exc:
                for name in exc.names:
                    if name == "sender_name":
                        no_sender_name.add(step.position)
                    else:
                        lacking.add(name)
                        missing_steps.setdefault(name, set()).add(step.position)
                continue
            except render.TemplateError:
                continue  # fails on some values only (e.g. a comparison): the worker says which
            if _UNSUBSCRIBE not in rendered.text:
                no_link[step.position] += count
        for name in lacking:
            missing[name] += count
        contacts_missing += count if lacking else 0
    if contacts_missing:
        variables = [
            {"name": name, "count": missing[name], "steps": sorted(missing_steps[name])}
            for name in sorted(missing, key=lambda n: (-missing[n], n))
        ]
        listed = ", ".join(f"{v['name']} ({v['count']})" for v in variables)
        report.warnings.append(
            Problem(
                "missing_variables",
                f"{_contacts(contacts_missing)} {'has' if contacts_missing == 1 else 'have'} no value for a field "
                f"the steps use without a default: {listed}. Their sends pause until the contact is filled in.",
                count=contacts_missing,
                details={"variables": variables},
            )
        )
    if no_sender_name:
        steps = ", ".join(str(p) for p in sorted(no_sender_name))
        report.blocking.append(
            Problem(
                "missing_sender_name",
                f"Step {steps} uses {{{{ sender_name }}}} without a default, and the sender has no name: set a From "
                "name (campaign settings, Settings or the mailboxes), or give the field a default.",
                details={"steps": sorted(no_sender_name)},
            )
        )
    if no_link:
        steps = ", ".join(str(p) for p in sorted(no_link))
        total = max(no_link.values())
        report.blocking.append(
            Problem(
                "unsubscribe_missing",
                f"Step {steps} can go out without an unsubscribe link: its body names {{{{ unsubscribe_url }}}} "
                "only where some contacts do not get it. Put the link where everyone gets it, or remove it to get "
                "the standard footer.",
                count=total if groups else None,
                details={"steps": sorted(no_link)},
            )
        )


def _presence_groups(instance: CampaignInstance, fields: list[str]) -> list[tuple[frozenset[str], int]]:
    """The live enrollments grouped by which of `fields` their contact has a value for, with
    their count: [(the fields filled, how many)], in one query."""
    if not fields:
        count = db.session.scalar(
            sa.select(sa.func.count()).select_from(CampaignEnrollment).where(*_live_here(instance))
        )
        return [(frozenset(), count)] if count else []
    flags = (
        sa.select(
            *(sa.case((merge_fields.has_value(name), 1), else_=0).label(f"f{i}") for i, name in enumerate(fields))
        )
        .select_from(CampaignEnrollment)
        .join(Contact, Contact.id == CampaignEnrollment.contact_id)
        .where(*_live_here(instance))
        .subquery()
    )
    # Grouped outside: PostgreSQL would not see the parameters of one expression as the same twice.
    rows = db.session.execute(sa.select(*flags.c, sa.func.count()).group_by(*flags.c)).all()
    return [(frozenset(name for name, flag in zip(fields, row[:-1], strict=True) if flag), row[-1]) for row in rows]


def _sample_context(present: frozenset[str], sender_name: str | None) -> dict:
    context = {name: _SAMPLE for name in present if not name.startswith(merge_fields.CUSTOM_PREFIX)}
    context[render.CUSTOM] = {
        name.removeprefix(merge_fields.CUSTOM_PREFIX): _SAMPLE
        for name in present
        if name.startswith(merge_fields.CUSTOM_PREFIX)
    }
    context["sender_name"] = sender_name
    context["unsubscribe_url"] = _UNSUBSCRIBE
    return context


def _contacts(count: int) -> str:
    return f"{count:,} contact{'' if count == 1 else 's'}"


@dataclass
class MissingData:
    """A campaign's enrollments paused because a message could not be built for them."""

    count: int
    reasons: list[tuple[str, int]]  # the commonest `status_reason`s, with their counts


def paused_for_missing_data(instance: CampaignInstance) -> MissingData:
    """The campaign's enrollments the worker paused for missing data (its "needs attention" box).
    Only a launched campaign sends, so a draft has none (and costs no query)."""
    if instance.status == InstanceStatus.DRAFT:
        return MissingData(0, [])
    paused = (
        CampaignEnrollment.instance_id == instance.id,
        CampaignEnrollment.status == EnrollmentStatus.PAUSED,
        CampaignEnrollment.status_reason.like(f"{lifecycle.Reason.MISSING_DATA}%"),
    )
    rows = db.session.execute(
        sa.select(CampaignEnrollment.status_reason, sa.func.count())
        .where(*paused)
        .group_by(CampaignEnrollment.status_reason)
        .order_by(sa.func.count().desc(), CampaignEnrollment.status_reason)
    ).all()
    return MissingData(
        sum(count for _, count in rows), [(reason, count) for reason, count in rows[:MISSING_DATA_REASONS]]
    )
