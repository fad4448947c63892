"""Event intake: deduplication, the stop rules a reply, a bounce or an unsubscribe trigger, and the rollups."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import builders
from tests.builders import contact_of, fresh, workspace_of
from webapp.extensions import db as _db
from webapp.models import CampaignEnrollment, CampaignEvent, Contact
from webapp.models.enums import EnrollmentStatus as S
from webapp.schemas.events import EventIn
from webapp.services.analytics import instance_performance
from webapp.services.events import NO_ENROLLMENT, ingest_events

AT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def event(provider_event_id: str, type: str, enrollment=None, **fields) -> EventIn:
    if enrollment is not None:
        fields["enrollment_id"] = str(enrollment.id)
    return EventIn.model_validate({"provider_event_id": provider_event_id, "type": type, "occurred_at": AT, **fields})


def stored_events() -> list[tuple]:
    return _db.session.execute(
        sa.select(CampaignEvent.provider_event_id, CampaignEvent.enrollment_id).order_by(
            CampaignEvent.provider_event_id
        )
    ).all()


def totals(instance):
    return instance_performance(workspace_of(instance), instance.id).totals


def test_a_redelivered_event_is_stored_and_counted_once(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    workspace = workspace_of(campaign)

    first = ingest_events(
        workspace, [event("s1", "sent", enrollment), event("s1", "sent", enrollment), event("o1", "opened", enrollment)]
    )
    again = ingest_events(
        workspace,
        [event("s1", "sent", enrollment), event("o1", "opened", enrollment), event("o2", "opened", enrollment)],
    )

    assert (first.received, first.stored, first.duplicates) == (3, 2, 1)
    assert (again.received, again.stored, again.duplicates) == (3, 1, 2)
    assert [provider_event_id for provider_event_id, _ in stored_events()] == ["o1", "o2", "s1"]
    assert (totals(campaign).sent, totals(campaign).opened) == (1, 1)


def test_the_same_event_id_from_another_provider_is_another_event(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    workspace = workspace_of(campaign)

    ingest_events(workspace, [event("x1", "sent", enrollment)], provider="mailgun")
    result = ingest_events(workspace, [event("x1", "sent", enrollment)], provider="postmark")

    assert result.stored == 1
    assert totals(campaign).sent == 2


def unknown_enrollment(campaign, enrollment):
    return {"enrollment_id": str(uuid.uuid4())}


def address_not_enrolled_here(campaign, enrollment):
    elsewhere = builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace_of(campaign)))
    return {"email": contact_of(elsewhere).email, "instance_id": str(campaign.id)}


def another_workspaces_enrollment(campaign, enrollment):
    return {"enrollment_id": str(builders.EnrollmentFactory(instance=builders.campaign()).id)}


def another_workspaces_campaign(campaign, enrollment):
    theirs = builders.EnrollmentFactory(instance=builders.campaign())
    return {"email": contact_of(theirs).email, "instance_id": str(theirs.instance_id)}


@pytest.mark.parametrize(
    "target",
    [unknown_enrollment, address_not_enrolled_here, another_workspaces_enrollment, another_workspaces_campaign],
)
def test_an_event_for_no_enrollment_of_the_workspace_is_skipped_with_a_reason(db, target):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)

    result = ingest_events(
        workspace_of(campaign),
        [event("ok", "replied", enrollment), event("lost", "replied", **target(campaign, enrollment))],
    )

    assert (result.received, result.stored, result.duplicates) == (2, 1, 0)
    assert result.skipped == [{"index": 1, "reason": NO_ENROLLMENT}]
    assert stored_events() == [("ok", enrollment.id)]


def test_an_event_may_name_its_enrollment_by_campaign_and_address(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    builders.EnrollmentFactory(
        instance=builders.campaign(workspace=workspace_of(campaign)), contact=contact_of(enrollment)
    )

    result = ingest_events(
        workspace_of(campaign),
        [event("r1", "replied", email=contact_of(enrollment).email.upper(), instance_id=str(campaign.id))],
    )

    assert result.stored == 1
    assert stored_events() == [("r1", enrollment.id)]
    assert fresh(CampaignEnrollment, enrollment.id).status == S.REPLIED


def test_a_step_of_another_campaign_is_refused(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    foreign_step = builders.StepFactory()

    result = ingest_events(workspace_of(campaign), [event("o1", "opened", enrollment, step_id=str(foreign_step.id))])

    assert result.skipped == [{"index": 0, "reason": f"step {foreign_step.id} is not part of this campaign"}]
    assert stored_events() == []


@pytest.mark.parametrize(
    ("template_settings", "campaign_settings", "stops"),
    [
        ({}, {}, True),
        ({"stop_on": ["bounce", "unsubscribe"]}, {}, False),
        ({"stop_on": ["bounce", "unsubscribe"]}, {"stop_on": ["reply"]}, True),
        ({"stop_on": ["reply"]}, {"stop_on": []}, False),
        ({}, {"stop_on": ["unsubscribe"]}, False),
    ],
)
def test_a_reply_stops_the_enrollment_only_when_the_campaign_stops_on_replies(
    db, template_settings, campaign_settings, stops
):
    campaign = builders.campaign(template_settings=template_settings, settings=campaign_settings)
    enrollment = builders.EnrollmentFactory(instance=campaign)
    elsewhere = builders.EnrollmentFactory(
        instance=builders.campaign(workspace=workspace_of(campaign)), contact=contact_of(enrollment)
    )

    ingest_events(workspace_of(campaign), [event("r1", "replied", enrollment)])

    row = fresh(CampaignEnrollment, enrollment.id)
    expected = (S.REPLIED, "replied (event)") if stops else (S.ACTIVE, None)
    assert (row.status, row.status_reason) == expected
    assert fresh(CampaignEnrollment, elsewhere.id).status == S.ACTIVE
    assert fresh(Contact, enrollment.contact_id).status == "subscribed"
    assert totals(campaign).replied == 1


@pytest.mark.parametrize("metadata", [None, {"bounce_type": "hard"}], ids=["unspecified", "hard"])
def test_a_hard_bounce_suppresses_the_contact_in_all_its_campaigns(db, metadata):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    workspace = workspace_of(campaign)
    draft = builders.campaign(workspace=workspace, status="draft")
    others = [
        builders.EnrollmentFactory(instance=builders.campaign(workspace=workspace), contact=contact_of(enrollment)),
        builders.EnrollmentFactory(instance=draft, contact=contact_of(enrollment)),
    ]
    bystander = builders.EnrollmentFactory(instance=campaign)

    ingest_events(workspace, [event("b1", "bounced", enrollment, metadata=metadata)])

    contact = fresh(Contact, enrollment.contact_id)
    assert (contact.status, contact.status_reason) == ("bounced", "bounced (event)")
    assert {fresh(CampaignEnrollment, e.id).status for e in (enrollment, *others)} == {S.BOUNCED}
    assert fresh(CampaignEnrollment, bystander.id).status == S.ACTIVE
    assert totals(campaign).bounced == 1


def test_a_soft_bounce_is_counted_and_stops_nothing(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)

    ingest_events(workspace_of(campaign), [event("b1", "bounced", enrollment, metadata={"bounce_type": "soft"})])

    assert fresh(Contact, enrollment.contact_id).status == "subscribed"
    assert fresh(CampaignEnrollment, enrollment.id).status == S.ACTIVE
    assert totals(campaign).bounced == 1


@pytest.mark.parametrize(("kind", "contact_status"), [("unsubscribed", "unsubscribed"), ("complained", "complained")])
def test_an_unsubscribe_or_a_complaint_suppresses_the_contact_and_unsubscribes_it_everywhere(db, kind, contact_status):
    campaign = builders.campaign(settings={"stop_on": ["reply"]})
    enrollment = builders.EnrollmentFactory(instance=campaign)
    elsewhere = builders.EnrollmentFactory(
        instance=builders.campaign(workspace=workspace_of(campaign)), contact=contact_of(enrollment), status=S.PAUSED
    )

    ingest_events(workspace_of(campaign), [event("u1", kind, enrollment)])

    contact = fresh(Contact, enrollment.contact_id)
    assert (contact.status, contact.status_reason) == (contact_status, f"{contact_status} (event)")
    assert fresh(CampaignEnrollment, enrollment.id).status == S.UNSUBSCRIBED
    assert fresh(CampaignEnrollment, elsewhere.id).status == S.UNSUBSCRIBED
    assert totals(campaign).unsubscribed == 1


def test_a_stopping_event_leaves_a_final_enrollment_as_it_ended(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign, status=S.COMPLETED, status_reason="all steps done")

    result = ingest_events(workspace_of(campaign), [event("r1", "replied", enrollment)])

    assert result.stored == 1
    row = fresh(CampaignEnrollment, enrollment.id)
    assert (row.status, row.status_reason) == (S.COMPLETED, "all steps done")


def test_in_one_batch_the_earliest_stopping_event_decides_whatever_the_order(db):
    campaign = builders.campaign()
    enrollment = builders.EnrollmentFactory(instance=campaign)
    later = (AT + timedelta(hours=2)).isoformat()

    ingest_events(
        workspace_of(campaign),
        [event("u1", "unsubscribed", enrollment, occurred_at=later), event("r1", "replied", enrollment)],
    )

    assert fresh(CampaignEnrollment, enrollment.id).status == S.REPLIED
    assert fresh(Contact, enrollment.contact_id).status == "unsubscribed"


def test_opens_count_once_per_enrollment_and_the_daily_series_gets_the_days_sends(db):
    campaign = builders.campaign()
    one, two = (builders.EnrollmentFactory(instance=campaign) for _ in range(2))

    ingest_events(
        workspace_of(campaign),
        [
            event("s1", "sent", one),
            event("s2", "sent", two),
            event("o1", "opened", one),
            event("o2", "opened", one),
            event("o3", "opened", two),
        ],
    )

    performance = instance_performance(workspace_of(campaign), campaign.id)
    assert (performance.totals.sent, performance.totals.opened) == (2, 2)
    assert [(point.date, point.sent, point.opened) for point in performance.daily] == [(AT.date(), 2, 2)]
