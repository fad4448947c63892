"""workspace_overview: the overview page's numbers, read from the rollups of events posted through the API."""

from datetime import UTC, datetime, timedelta

import pytest

from tests import factories
from tests.web.test_dashboard import event, post_events, running_campaign
from webapp.errors import ValidationFailed
from webapp.services.analytics import workspace_overview

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def overview(owner, **kwargs):
    return workspace_overview(owner.workspace, now=NOW, **kwargs)


def test_it_counts_the_period_only(api, app, owner):
    _, (e1, e2), step = running_campaign(api, 2)
    post_events(
        api,
        [
            event("today", e1, "sent", step, NOW),
            event("first-day", e2, "sent", step, NOW - timedelta(days=29)),
            event("too-old", e2, "replied", step, NOW - timedelta(days=30)),
        ],
    )
    with app.app_context():
        month, quarter = overview(owner), overview(owner, days=90)

    assert (month.start, month.end) == (NOW.date() - timedelta(days=29), NOW.date())
    assert month.totals["sent"] == 2 and month.totals["replied"] == 0
    assert quarter.totals["replied"] == 1
    assert len(month.daily) == 30 and month.daily[-1].date == NOW.date()
    assert [day.sent for day in month.daily if day.sent] == [1, 1]
    assert sum(day.replied for day in month.daily) == 0


def test_rates_are_per_contact_and_complaints_count_as_unsubscribes(api, app, owner):
    _, (e1, e2, e3, e4), step = running_campaign(api, 4)
    sends = [event(f"s{n}", e, "sent", step, NOW) for n, e in enumerate((e1, e2, e3, e4))]
    # A second message to e1 (no step: the API may report sends of its own) is not a second contact.
    sends.append(event("s-again", e1, "sent", None, NOW))
    post_events(
        api,
        [
            *sends,
            event("o1", e1, "opened", step, NOW),
            event("o2", e1, "opened", step, NOW),
            event("r1", e1, "replied", step, NOW),
            event("c2", e2, "complained", step, NOW),
            event("u3", e3, "unsubscribed", step, NOW),
        ],
    )
    with app.app_context():
        result = overview(owner)

    assert result.totals == {
        "sent": 5,
        "delivered": 0,
        "opened": 1,
        "clicked": 0,
        "replied": 1,
        "bounced": 0,
        "unsubscribed": 2,
    }
    assert all(type(n) is int for n in result.totals.values())
    assert (result.contacts.emailed, result.contacts.contacted, result.contacts.unsubscribed) == (4, 4, 2)
    assert (result.rates.reply_rate, result.rates.unsubscribe_rate, result.rates.open_rate) == (0.25, 0.5, 0.25)
    assert result.daily[-1].unsubscribed == 2
    assert result.statuses["replied"] == 1 and result.statuses["unsubscribed"] == 2


def test_only_active_campaigns_count_and_paused_ones_need_attention(api, app, owner):
    instance, (e1, e2), step = running_campaign(api, 2, name="Soon paused")
    post_events(api, [event("s1", e1, "sent", step, NOW), event("s2", e2, "sent", step, NOW)])
    post_events(api, [event("b1", e1, "bounced", step, NOW)])
    assert api.patch(f"/instances/{instance['id']}", json={"status": "paused"}).status_code == 200
    factories.instance(api, name="Draft")
    with app.app_context():
        result = overview(owner)

    assert result.active_campaigns == 0
    assert result.totals["sent"] == 0 and sum(result.statuses.values()) == 0
    (item,) = result.attention
    assert item.name == "Soon paused" and item.reasons == ("bounces", "paused")
    assert (item.emailed, item.bounced, item.bounce_rate) == (2, 1, 0.5)


def test_a_bounce_rate_of_five_percent_is_not_an_alert(api, app, owner):
    _, enrollments, step = running_campaign(api, 20)
    sends = [event(f"s{n}", e, "sent", step, NOW) for n, e in enumerate(enrollments)]
    post_events(api, [*sends, event("b", enrollments[0], "bounced", step, NOW)])
    with app.app_context():
        assert overview(owner).attention == []


def test_other_workspaces_are_invisible(api, app, owner, outsider):
    _, (e1,), step = running_campaign(api, 1)
    post_events(api, [event("s1", e1, "sent", step, NOW)])
    factories.instance(api, status="paused")
    with app.app_context():
        result = workspace_overview(outsider.workspace, now=NOW)

    assert result.totals["sent"] == 0 and result.attention == [] and result.active_campaigns == 0


@pytest.mark.parametrize("days", [0, -1, 367])
def test_the_period_is_bounded(app, owner, days):
    with app.app_context(), pytest.raises(ValidationFailed):
        overview(owner, days=days)
