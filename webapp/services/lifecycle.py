"""The enrollment lifecycle: the one state machine every status change goes through.

    enrolled --launch--> active --advance--> active ... --complete--> completed
    enrolled, active --pause--> paused --resume--> active (enrolled while the campaign is a draft)
    live --reply / bounce / unsubscribe / remove / end--> replied / bounced / unsubscribed / removed / completed
    active --fail--> failed --retry--> active

The live statuses are enrolled, active and paused; the others are final (only a person's retry
of a failed send leaves one). Each transition names
who may trigger it (`Actor`): the dashboard asks `actions` which buttons to show, and the API,
the worker, event intake and the importer call `change` (many enrollments) or `change_one`.

Every change is one guarded UPDATE: `... WHERE <scope> AND status IN (<the transition's
sources>)`. Two changes at once never overwrite each other: the second finds the row no longer
in a source status and changes nothing. Nothing here commits; the calling service does.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Task, utcnow
from webapp.models.enums import EnrollmentStatus, InstanceStatus, TaskStatus
from webapp.services.bulk import one_of

LIVE = frozenset({EnrollmentStatus.ENROLLED, EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED})
FINAL = frozenset(EnrollmentStatus) - LIVE
CHUNK = 500


class Actor(StrEnum):
    """Who triggers a change."""

    PERSON = "person"  # someone in the dashboard
    API = "api"  # a script with an API key
    WORKER = "worker"  # the send worker
    EVENT = "event"  # provider webhooks, tracking and unsubscribe links
    IMPORTER = "importer"  # CSV imports and suppression lists


class Reason(StrEnum):
    """Why an enrollment changed status: the start of its `status_reason` (details may follow)."""

    PAUSED = "paused manually"
    RESUMED = "resumed manually"
    MISSING_DATA = "paused for missing data"
    UNBUILDABLE = "paused: the message cannot be built"
    INVALID_SETTINGS = "paused: the campaign's settings are invalid"
    ALL_STEPS_DONE = "all steps done"
    CAMPAIGN_COMPLETED = "campaign completed"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    SEND_FAILED = "send failed"
    UNENROLLED = "unenrolled"
    STEP_REMOVED = "stopped: the step they were waiting on was removed from the campaign"


PEOPLE = frozenset({Actor.PERSON, Actor.API})


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    targets: tuple[str, ...]  # the first is the usual one
    actors: frozenset[Actor]
    label: str = ""  # the dashboard's button, for the transitions a person triggers one at a time

    @property
    def final(self) -> bool:
        return self.targets[0] in FINAL


def _transition(name, sources, targets, actors, label=""):
    return Transition(name, frozenset(sources), tuple(targets), frozenset(actors), label)


TRANSITIONS = {
    t.name: t
    for t in (
        # The worker launches a campaign a person scheduled (`start_at`).
        _transition("launch", {EnrollmentStatus.ENROLLED}, [EnrollmentStatus.ACTIVE], {*PEOPLE, Actor.WORKER}),
        _transition(
            "pause",
            {EnrollmentStatus.ENROLLED, EnrollmentStatus.ACTIVE},
            [EnrollmentStatus.PAUSED],
            {*PEOPLE, Actor.WORKER},
            "Pause",
        ),
        _transition(
            "resume", {EnrollmentStatus.PAUSED}, [EnrollmentStatus.ACTIVE, EnrollmentStatus.ENROLLED], PEOPLE, "Resume"
        ),
        # A step done: the worker after a send, a person finishing a task or resolving a delivery.
        _transition("advance", {EnrollmentStatus.ACTIVE}, [EnrollmentStatus.ACTIVE], {*PEOPLE, Actor.WORKER}),
        _transition("complete", {EnrollmentStatus.ACTIVE}, [EnrollmentStatus.COMPLETED], {*PEOPLE, Actor.WORKER}),
        _transition("end", LIVE, [EnrollmentStatus.COMPLETED], PEOPLE),
        _transition("reply", LIVE, [EnrollmentStatus.REPLIED], {*PEOPLE, Actor.EVENT}, "Mark replied"),
        _transition("bounce", LIVE, [EnrollmentStatus.BOUNCED], {*PEOPLE, Actor.EVENT, Actor.WORKER, Actor.IMPORTER}),
        _transition("unsubscribe", LIVE, [EnrollmentStatus.UNSUBSCRIBED], {*PEOPLE, Actor.EVENT, Actor.IMPORTER}),
        _transition("fail", {EnrollmentStatus.ACTIVE}, [EnrollmentStatus.FAILED], {Actor.WORKER}),
        # A person sends a failed step again (services/sending/deliveries.retry_failed_delivery).
        _transition("retry", {EnrollmentStatus.FAILED}, [EnrollmentStatus.ACTIVE], PEOPLE),
        _transition("remove", LIVE, [EnrollmentStatus.REMOVED], PEOPLE, "Unenroll"),
    )
}


def transition(name: str, actor: Actor, to: str | None = None) -> Transition:
    """The transition `name`, checked: `actor` may trigger it and `to` is one of its targets.
    A mismatch is a programming error (ValueError), not a user's."""
    found = TRANSITIONS[name]
    if actor not in found.actors:
        raise ValueError(f"{actor} may not {name} an enrollment")
    if to is not None and to not in found.targets:
        raise ValueError(f"{name} leads to {', '.join(found.targets)}, not {to}")
    return found


def initial_status(instance_status: str) -> str:
    """The status of a new enrollment: it waits for the launch in a draft campaign."""
    return EnrollmentStatus.ENROLLED if instance_status == InstanceStatus.DRAFT else EnrollmentStatus.ACTIVE


def resume_status(instance_status: str) -> str:
    return initial_status(instance_status)


def actions(status: str, actor: Actor = Actor.PERSON) -> tuple[Transition, ...]:
    """The one-at-a-time actions `actor` may take on an enrollment in `status` (the dashboard's buttons)."""
    return tuple(t for t in TRANSITIONS.values() if t.label and actor in t.actors and status in t.sources)


def reason_text(reason: Reason | str, detail: str | None = None) -> str:
    """The `status_reason` stored for `reason` (255 characters at most)."""
    return (f"{reason}: {detail}" if detail else str(reason))[:255]


def statement(name: str, *, actor: Actor, reason: str | None, now: datetime, to: str | None = None) -> sa.Update:
    """The guarded UPDATE of transition `name` without its scope, for callers that add a WHERE
    and per-row values themselves (the worker's batches). It sets `status_reason` to `reason`."""
    found = transition(name, actor, to)
    table = CampaignEnrollment.__table__
    values = {"status": to or found.targets[0], "status_reason": reason[:255] if reason else None, "updated_at": now}
    if found.final:
        values.update(next_action_at=None, completed_at=now)
    # OR of equalities rather than IN: an IN list cannot be sent with executemany.
    sources = sa.or_(*(table.c.status == status for status in sorted(found.sources)))
    return sa.update(table).where(sources).values(values)


def change(
    name: str,
    *,
    actor: Actor,
    where: Iterable[sa.ColumnElement[bool]] = (),
    ids: Iterable[uuid.UUID] | None = None,
    reason: str | None,
    to: str | None = None,
    now: datetime | None = None,
    **values,
) -> list[uuid.UUID]:
    """Apply transition `name` to the enrollments matching `where` (and among `ids`, when given)
    that are in one of its source statuses; `values` sets other columns too (e.g. `next_action_at`).
    Returns the ids changed. Flushes nothing else; the caller commits."""
    now = now or utcnow()
    table = CampaignEnrollment.__table__
    base = statement(name, actor=actor, reason=reason, now=now, to=to).where(*where)
    if values:
        base = base.values(values)
    base = base.returning(table.c.id).execution_options(synchronize_session=False)
    if ids is None:
        changed = list(db.session.scalars(base))
    else:
        changed = []
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), CHUNK):
            changed += db.session.scalars(base.where(one_of(table.c.id, wanted[start : start + CHUNK])))
    if TRANSITIONS[name].final:
        _close_tasks(changed, now)
    return changed


def _close_tasks(enrollment_ids: list[uuid.UUID], now: datetime) -> None:
    """An enrollment that ended leaves nothing on anyone's to-do list: its open tasks are skipped."""
    table = Task.__table__
    for start in range(0, len(enrollment_ids), CHUNK):
        db.session.execute(
            sa.update(table)
            .where(
                one_of(table.c.enrollment_id, enrollment_ids[start : start + CHUNK]), table.c.status == TaskStatus.OPEN
            )
            .values(status=TaskStatus.SKIPPED, completed_at=now, updated_at=now)
        )


def change_one(
    enrollment: CampaignEnrollment,
    name: str,
    *,
    actor: Actor,
    reason: str,
    to: str | None = None,
    now: datetime | None = None,
    **values,
) -> None:
    """Apply transition `name` to one enrollment, or raise InvalidTransition (409) naming the
    statuses it is allowed from. The object is refreshed with what was stored."""
    found = transition(name, actor, to)
    verb = found.label.lower() or name
    if enrollment.status not in found.sources:
        raise InvalidTransition(_refusal(verb, enrollment.status, found))
    if not change(name, actor=actor, ids=[enrollment.id], reason=reason, to=to, now=now, **values):
        db.session.refresh(enrollment)  # another change won the race
        raise InvalidTransition(_refusal(verb, enrollment.status, found))
    db.session.refresh(enrollment)


def _refusal(verb: str, status: str, found: Transition) -> str:
    allowed = ", ".join(s for s in EnrollmentStatus if s in found.sources)
    article = "an" if status[0] in "aeiou" else "a"
    return f"Cannot {verb} {article} {status} enrollment. Allowed from: {allowed}."
