"""Per-contact numbers: each contact counts once however many messages or events it had, a task done
counts as contacting, and a step's rates are of the contacts who received that step."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests import builders
from webapp.models import SequenceStep
from webapp.models.enums import Channel, StepAction
from webapp.services.analytics import instance_performance, workspace_overview
from webapp.services.events import record_events

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def row(enrollment, kind, step=None, *, at=T0, key=None, channel="email"):
    return {
        "workspace_id": enrollment.workspace_id,
        "enrollment_id": enrollment.id,
        "step_id": step.id if step else None,
        "channel": channel,
        "type": kind,
        "provider": "test",
        "provider_event_id": key or f"{kind}:{enrollment.id}:{step.id if step else '-'}:{at.isoformat()}",
        "occurred_at": at,
        "metadata": {},
    }


def seeded(db):
    """Three email steps and a LinkedIn step. Five contacts: a, b, c emailed step 1; a and b step 2
    (a twice: a resend reported by the provider); a step 3; d only had the LinkedIn task done; e
    nothing. a opened step 1 three times and step 2 once; b opened step 2; a and d replied; c bounced."""
    campaign = builders.campaign(steps=3)
    email = db.session.scalars(
        sa.select(SequenceStep).where(SequenceStep.template_id == campaign.template_id).order_by(SequenceStep.position)
    ).all()
    linkedin = builders.StepFactory(
        template_id=campaign.template_id, position=4, channel=Channel.LINKEDIN, action=StepAction.MESSAGE
    )
    a, b, c, d, e = (builders.EnrollmentFactory(instance=campaign) for _ in range(5))
    s1, s2, s3 = email
    later = T0 + timedelta(days=3)
    rows = [
        row(a, "sent", s1),
        row(b, "sent", s1),
        row(c, "sent", s1),
        row(a, "sent", s2, at=later),
        row(a, "sent", s2, at=later, key="resend-a-2"),
        row(b, "sent", s2, at=later),
        row(a, "sent", s3, at=later + timedelta(days=1)),
        row(d, "task_completed", linkedin, channel="linkedin"),
        *(row(a, "opened", s1, at=T0 + timedelta(hours=n)) for n in (1, 2, 3)),
        row(a, "opened", s2, at=later + timedelta(hours=1)),
        row(b, "opened", s2, at=later + timedelta(hours=1)),
        row(a, "replied", s3, at=later + timedelta(days=2)),
        row(d, "replied", linkedin, at=T0 + timedelta(hours=5), channel="linkedin"),
        row(c, "bounced", s1, at=T0 + timedelta(minutes=1)),
    ]
    record_events(builders.workspace_of(campaign), rows)
    db.session.commit()
    return campaign, (s1, s2, s3, linkedin), e


def test_each_contact_counts_once_and_replies_are_of_the_contacts_contacted_on_any_channel(db):
    campaign, _, _ = seeded(db)

    numbers = instance_performance(builders.workspace_of(campaign), campaign.id)

    assert (numbers.totals.sent, numbers.totals.opened, numbers.totals.replied) == (7, 2, 2)
    assert numbers.contacts.model_dump() == {
        "contacted": 4,
        "emailed": 3,
        "opened": 2,
        "clicked": 0,
        "replied": 2,
        "bounced": 1,
        "unsubscribed": 0,
    }
    # Per message these would be 2 / 7 opened and 2 / 7 replied.
    assert numbers.rates.open_rate == round(2 / 3, 4)
    assert numbers.rates.bounce_rate == round(1 / 3, 4)
    assert numbers.rates.reply_rate == 0.5


def test_a_steps_rates_are_of_the_contacts_who_received_that_step(db):
    campaign, _, _ = seeded(db)

    steps = instance_performance(builders.workspace_of(campaign), campaign.id).steps

    received = [step.contacts.received for step in steps]
    assert received == [3, 2, 1, 1]
    first, second, third, linkedin = steps
    assert (first.contacts.opened, first.rates.open_rate) == (1, round(1 / 3, 4))
    assert (first.contacts.bounced, first.rates.bounce_rate) == (1, round(1 / 3, 4))
    # a got step 2 twice: two messages, one contact who received it, and both who received it opened.
    assert (second.totals.sent, second.contacts.opened, second.rates.open_rate) == (3, 2, 1.0)
    assert (third.contacts.replied, third.rates.reply_rate) == (1, 1.0)
    assert (linkedin.contacts.replied, linkedin.rates.reply_rate, linkedin.rates.open_rate) == (1, 1.0, 0.0)


def test_the_daily_series_counts_contacts_on_the_day_they_first_did_it(db):
    campaign, _, _ = seeded(db)

    daily = {point.date: point for point in instance_performance(builders.workspace_of(campaign), campaign.id).daily}

    assert daily[T0.date()].sent == 3 and daily[T0.date()].opened == 1 and daily[T0.date()].replied == 1
    assert daily[(T0 + timedelta(days=3)).date()].opened == 1  # b; a had opened on the first day
    assert sum(point.opened for point in daily.values()) == 2


def test_the_overview_rates_are_per_contact_since_launch_whatever_the_period(db):
    campaign, _, _ = seeded(db)
    workspace = builders.workspace_of(campaign)

    week = workspace_overview(workspace, days=7, now=T0 + timedelta(days=30))

    assert week.totals["sent"] == 0
    assert (week.contacts.replied, week.contacts.contacted, week.rates.reply_rate) == (2, 4, 0.5)
    assert (week.contacts.bounced, week.contacts.emailed) == (1, 3)
