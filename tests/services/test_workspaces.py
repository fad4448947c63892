"""Workspace settings services: sender defaults and the webhook secret, one transaction each."""

import pytest

from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.models import Workspace
from webapp.services.workspaces import rotate_webhook_secret, sender_defaults, update_sender_defaults

VALID = {
    "send_window": {"days": [1, 2, 3], "start": "09:00", "end": "17:30"},
    "timezone": "America/New_York",
    "daily_cap": 200,
    "from_name": "Ann from Acme",
    "from_email": "ann@acme.test",
}


@pytest.fixture
def workspace(db, owner) -> Workspace:
    return db.session.get(Workspace, owner.workspace_id)


def stored(workspace_id) -> dict:
    """The settings as committed, read through a fresh session."""
    db.session.remove()
    return dict(db.session.get(Workspace, workspace_id).settings)


def test_it_stores_the_sender_defaults_and_keeps_other_settings(workspace):
    workspace.settings = {"tracking_domain": "t.acme.test", "daily_cap": 5}
    db.session.commit()

    result = update_sender_defaults(workspace, VALID)

    assert result == VALID
    assert stored(workspace.id) == {**VALID, "tracking_domain": "t.acme.test"}


def test_form_text_is_accepted_and_cleaned(workspace):
    values = {
        "send_window": {"days": ["5", "1", "1"], "start": "08:00", "end": "12:00"},
        "daily_cap": "40",
        "from_email": " Ann@ACME.test ",
        "from_name": "  Ann  ",
        "timezone": "",
    }

    result = update_sender_defaults(workspace, values)

    assert result == {
        "send_window": {"days": [1, 5], "start": "08:00", "end": "12:00"},
        "daily_cap": 40,
        "from_email": "ann@acme.test",
        "from_name": "Ann",
    }


def test_missing_values_clear_their_default(workspace):
    update_sender_defaults(workspace, VALID)

    result = update_sender_defaults(workspace, {"daily_cap": 10, "send_window": None})

    assert result == {"daily_cap": 10}
    assert sender_defaults(db.session.get(Workspace, workspace.id)) == {"daily_cap": 10}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"send_window": {"days": [1], "start": "09:00", "end": "09:00"}}, "send_window"),
        ({"send_window": {"days": [], "start": "09:00", "end": "10:00"}}, "send_window.days"),
        ({"send_window": {"days": [1], "start": "25:00", "end": "10:00"}}, "send_window.start"),
        ({"send_window": {"days": [1], "start": "09:00", "end": "10:00", "extra": 1}}, "send_window.extra"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"daily_cap": 0}, "daily_cap"),
        ({"daily_cap": "ten"}, "daily_cap"),
        ({"from_email": "ann@"}, "from_email"),
        ({"from_name": "Ann\r\nBcc: everyone@example.com"}, "from_name"),
        ({"from_name": "=?utf-8?q?Ann?="}, "from_name"),
        ({"from_name": "x" * 101}, "from_name"),
        ({"stop_on": ["reply"]}, "stop_on"),
    ],
)
def test_invalid_values_raise_and_change_nothing(workspace, values, field):
    update_sender_defaults(workspace, VALID)

    with pytest.raises(ValidationFailed) as raised:
        update_sender_defaults(workspace, {**VALID, **values})

    assert field in {detail["field"] for detail in raised.value.details}
    db.session.rollback()
    assert stored(workspace.id) == VALID


def test_rotating_the_webhook_secret_commits_a_new_one(workspace):
    old = workspace.webhook_secret

    new = rotate_webhook_secret(workspace)

    assert new != old and new.startswith("whsec_") and len(new) == len(old)
    db.session.remove()
    assert db.session.get(Workspace, workspace.id).webhook_secret == new
