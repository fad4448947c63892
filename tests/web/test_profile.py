"""Your profile: each user's time zone, in which every page shows times (the API stays UTC)."""

import re

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import ApiClient
from tests.web.conftest import csrf_token, scalar
from webapp.models import User

HTMX = {"HX-Request": "true"}


def save(client, zone: str, headers=None):
    data = {"csrf_token": csrf_token(client, "/settings"), "timezone": zone}
    return client.post("/settings/profile", data=data, headers=headers)


def zone_of(app, persona) -> str:
    return scalar(app, sa.select(User.timezone).where(User.email == persona.email))


def test_a_member_sets_their_own_time_zone_and_nobody_elses(app, client, owner, teammate, login):
    login(teammate)

    response = save(client, "Europe/Paris")

    assert response.status_code == 303 and response.headers["Location"].endswith("/settings#profile")
    assert (zone_of(app, teammate), zone_of(app, owner)) == ("Europe/Paris", "UTC")
    page = client.get("/settings").get_data(as_text=True)
    assert 'id="field-profile-timezone" name="timezone" value="Europe/Paris"' in page


@pytest.mark.parametrize(
    ("zone", "message"), [("Mars/Olympus_Mons", "unknown time zone"), ("  ", "choose a time zone")]
)
def test_an_unknown_or_empty_zone_is_refused_with_a_message_on_the_form(app, client, owner, login, zone, message):
    login(owner)

    response = save(client, zone, headers=HTMX)

    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert body.lstrip().startswith('<section id="profile"')
    assert re.search(rf'<ul class="field__errors" id="field-profile-timezone-error">\s*<li>[^<]*{message}', body)
    assert zone_of(app, owner) == "UTC"


def test_the_change_needs_a_csrf_token(app, client, owner, login):
    login(owner)

    assert client.post("/settings/profile", data={"timezone": "Asia/Tokyo"}).status_code == 400
    assert zone_of(app, owner) == "UTC"


def timeline(client, api, when: str) -> tuple[str, dict]:
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    event = {"provider_event_id": "o-1", "type": "opened", "enrollment_id": enrollment["id"], "occurred_at": when}
    assert api.post("/events/webhook", json=event).status_code == 200
    page = client.get(f"/campaigns/{instance['id']}/enrollments/{enrollment['id']}").get_data(as_text=True)
    return page, api.get(f"/enrollments/{enrollment['id']}/events").get_json()["data"][0]


def test_pages_show_times_in_the_users_zone_named_and_the_api_keeps_utc(app, client, owner, login):
    api = ApiClient(app.test_client(), owner)
    login(owner)
    assert save(client, "Asia/Tokyo").status_code == 303

    page, event = timeline(client, api, "2026-11-20T20:00:00Z")

    # 20:00 UTC is 05:00 the next day in Tokyo: the date moves too.
    utc = '<time datetime="2026-11-20T20:00:00+00:00" title="Asia/Tokyo; 2026-11-20 20:00 UTC">'
    assert f"{utc}2026-11-21 05:00 JST</time>" in page
    assert event["occurred_at"].startswith("2026-11-20T20:00:00")


def test_a_user_who_never_chose_sees_utc_named(app, client, owner, login):
    api = ApiClient(app.test_client(), owner)
    login(owner)

    page, _ = timeline(client, api, "2026-11-20T20:00:00Z")

    assert (
        '<time datetime="2026-11-20T20:00:00+00:00" title="UTC; 2026-11-20 20:00 UTC">2026-11-20 20:00 UTC</time>'
        in page
    )
