"""Effective settings: workspace sender defaults < template < campaign, merged in one place."""

import pytest

from webapp.engine.policy import Window
from webapp.services.sending import settings


def test_each_level_overrides_the_one_below(ctx):
    workspace = {"timezone": "Europe/Paris", "daily_cap": 100, "from_name": "Acme", "track_opens": True}
    template = {"daily_cap": 50, "min_gap_seconds": 60, "from_email": "Sales@Acme.test"}
    campaign = {"daily_cap": 10, "send_window": {"days": [1], "start": "08:00", "end": "12:00"}}

    effective = settings.merge(workspace, template, campaign)

    assert effective.rules.daily_cap == 10 and effective.rules.min_gap_seconds == 60
    assert effective.rules.window.days == frozenset({1})
    assert effective.rules.timezone == "Europe/Paris"
    assert effective.rules.sender_timezone == "Europe/Paris"  # the sender's day: the workspace's zone
    assert (effective.sender.name, effective.sender.address) == ("Acme", "sales@acme.test")
    assert not effective.track_opens  # only sender defaults come from the workspace


def test_a_campaign_s_zone_does_not_move_the_sender_s_day(ctx):
    effective = settings.merge({"timezone": "Asia/Tokyo"}, {"timezone": "America/New_York"}, None)
    assert (effective.rules.timezone, effective.rules.sender_timezone) == ("America/New_York", "Asia/Tokyo")
    assert settings.merge(None, {"timezone": "America/New_York"}, None).rules.sender_timezone is None


def test_without_a_sender_the_configured_mail_from_sends(app, ctx):
    app.config["MAIL_FROM"] = "Team Drumbeat <Team@Example.com>"
    assert settings.merge(None, None, None).sender == settings.Sender("Team Drumbeat", "team@example.com")
    assert settings.merge(None, None, {"from_name": "Bo"}).sender == settings.Sender("Bo", "team@example.com")


def test_stop_rules_default_to_all_three_and_an_empty_list_means_none(ctx):
    assert settings.merge(None, None, None).stop_on == {"reply", "bounce", "unsubscribe"}
    assert settings.merge(None, {"stop_on": ["reply"]}, None).stop_on == {"reply"}
    assert settings.merge(None, {"stop_on": ["reply"]}, {"stop_on": []}).stop_on == frozenset()


@pytest.mark.parametrize(
    "stored",
    [{"skip_holidays": "XX"}, {"send_window": {"days": [9]}}, {"send_window": {"start": "9", "end": "17:00"}}],
)
def test_stored_settings_the_policy_refuses_are_invalid(ctx, stored):
    with pytest.raises(settings.InvalidSettings):
        settings.merge(None, stored, None)


def test_the_window_is_parsed_once(ctx):
    effective = settings.merge(None, {"send_window": None}, None)
    assert effective.rules.window is None
    effective = settings.merge(None, {"send_window": {"days": [1, 2]}}, None)
    assert isinstance(effective.rules.window, Window)
