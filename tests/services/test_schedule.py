"""The "what goes out when" preview promises the times the worker keeps: both ask the same policy."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests import builders
from webapp.engine.mailer import OutboxTransport
from webapp.extensions import db
from webapp.models import Delivery
from webapp.services.schedule import preview_schedule
from webapp.worker import Worker

PARIS = ZoneInfo("Europe/Paris")
WINDOW = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00", "timezone": "Europe/Paris"}
# Friday 2026-10-23, 16:10 in Paris; clocks go back on Sunday the 25th.
FRIDAY = datetime(2026, 10, 23, 16, 10, tzinfo=PARIS).astimezone(UTC)
ZONES = [None, None, "America/New_York", None, "Asia/Tokyo", "America/New_York", None, "Pacific/Auckland", None]


def sent_at_each_run(app, times: list[datetime]) -> dict[datetime, set]:
    """Run a worker one second before and at each of `times`; what was claimed at each run."""
    worker = Worker(app, transport=OutboxTransport())
    sent: dict[datetime, set] = {}
    for moment in sorted(set(times)):
        assert worker.run_once(now=moment - timedelta(seconds=1)).sent == 0, f"sent before {moment}"
        worker.run_once(now=moment)
        with app.app_context():
            rows = db.session.execute(
                sa.select(Delivery.enrollment_id, Delivery.step_id).where(Delivery.created_at == moment)
            ).all()
        sent[moment] = {row.enrollment_id for row in rows}
    return sent


def launched(db, *, steps: int, settings: dict, contacts: list[str | None]):
    workspace = builders.WorkspaceFactory(settings={"timezone": "Europe/Paris"})
    campaign = builders.campaign(
        workspace=workspace, steps=steps, delays=(0, 1), template_settings={"send_window": WINDOW}, settings=settings
    )
    for zone in contacts:
        contact = builders.ContactFactory(workspace_id=workspace.id, timezone=zone)
        builders.EnrollmentFactory(instance=campaign, contact=contact, next_action_at=FRIDAY)
    return workspace, campaign


def test_the_first_preview_of_a_one_step_campaign_is_the_worker_s_timetable(app, db):
    workspace, campaign = launched(db, steps=1, settings={"daily_cap": 3, "min_gap_seconds": 1200}, contacts=ZONES)
    preview = preview_schedule(workspace, campaign.id, limit=50, now=FRIDAY)

    assert len(preview) == 9 and all(send.due_at for send in preview)
    promised = {send.enrollment_id: send.due_at for send in preview}
    reasons = {send.reason for send in preview}
    assert any(reason and "daily cap reached" in reason for reason in reasons)
    assert any(reason and "minimum gap" in reason for reason in reasons)
    assert any(reason and "outside the send window" in reason for reason in reasons)
    assert len(set(promised.values())) == 9  # the gap keeps every send apart

    sent = sent_at_each_run(app, list(promised.values()))

    assert {moment: ids for moment, ids in sent.items()} == {
        moment: {e for e, at in promised.items() if at == moment} for moment in promised.values()
    }


@pytest.mark.parametrize(
    "settings", [{"daily_cap": 2}, {"min_gap_seconds": 3600}, {"daily_cap": 3, "min_gap_seconds": 900}]
)
def test_each_preview_of_a_two_step_campaign_names_the_worker_s_next_sends(app, db, settings):
    workspace, campaign = launched(db, steps=2, settings=settings, contacts=ZONES[:6])
    now, rounds, done = FRIDAY, 0, set()
    while rounds < 40:
        rounds += 1
        with app.app_context():
            preview = [s for s in preview_schedule(workspace, campaign.id, limit=50, now=now) if s.due_at]
        if not preview:
            break
        first = min(send.due_at for send in preview)
        expected = {send.enrollment_id for send in preview if send.due_at == first}
        assert sent_at_each_run(app, [first]) == {first: expected}
        done |= {(e, s.step_number) for e in expected for s in preview if s.enrollment_id == e}
        now = first
    assert len(done) == 12  # six contacts, two steps each, all in the order promised
