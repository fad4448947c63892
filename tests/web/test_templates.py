"""The Templates pages: the list, the sequence builder, the live preview, and their wiring
(page vs fragment, 422 forms, 303 redirects, authorization, CSRF, sign-in, query counts)."""

import contextlib
import json
import re
import uuid

import pytest
import sqlalchemy as sa

from tests import factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Delivery

HTMX = {"HX-Request": "true"}
HISTORY_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
SSTI = "{{ ''.__class__.__mro__ }}"


@pytest.fixture
def signed_in(client, owner, login):
    login(owner)
    return client


@pytest.fixture
def token(signed_in):
    return csrf_token(signed_in, "/templates")


@pytest.fixture
def sequence(api):
    """An owner's template with two email steps and a LinkedIn step."""
    return factories.template(api, steps=2, linkedin=True, name="Founders outreach")


def html_of(response) -> str:
    return response.get_data(as_text=True)


def is_page(response) -> bool:
    return html_of(response).startswith("<!doctype html>")


def steps_of(api, template_id: str) -> list[dict]:
    return api.get(f"/templates/{template_id}").get_json()["data"]["steps"]


def template_of(api, template_id: str) -> dict:
    return api.get(f"/templates/{template_id}").get_json()["data"]


def toast(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["toast"]


def error_beside(html: str, field_id: str) -> str:
    """The messages shown under the control with this id."""
    match = re.search(rf'<ul class="field__errors" id="{re.escape(field_id)}-error">(.*?)</ul>', html, re.S)
    assert match, f"no errors beside #{field_id}"
    return re.sub(r"<[^>]+>", " ", match.group(1))


# The list


def test_the_list_is_a_page_its_rows_a_fragment_and_a_history_restore_a_page(signed_in, sequence):
    page = signed_in.get("/templates")
    fragment = signed_in.get("/templates", headers=HTMX)
    restored = signed_in.get("/templates", headers=HISTORY_RESTORE)

    assert page.status_code == fragment.status_code == restored.status_code == 200
    assert is_page(page) and is_page(restored)
    assert html_of(fragment).lstrip().startswith('<div id="rows"')
    assert "Founders outreach" in html_of(fragment)
    assert '<form id="new-template"' not in html_of(fragment)
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_search_box_searches_live_on_the_same_url(signed_in, api):
    factories.template(api, steps=0, name="Founders outreach")
    factories.template(api, steps=0, name="Partners follow-up")

    html = html_of(signed_in.get("/templates"))
    response = signed_in.get("/templates?search=partn", headers=HTMX)

    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert 'hx-get="/templates"' in html and 'hx-target="#rows"' in html
    assert "Partners follow-up" in html_of(response)
    assert "Founders outreach" not in html_of(response)
    assert "1 template matches your search" in html_of(response)


def test_the_list_filters_by_status(signed_in, api):
    factories.template(api, steps=0, name="Live one")
    factories.template(api, steps=0, name="Retired one", is_active=False)

    inactive = html_of(signed_in.get("/templates?is_active=false", headers=HTMX))
    active = html_of(signed_in.get("/templates?is_active=true", headers=HTMX))
    everything = html_of(signed_in.get("/templates?is_active=&search="))

    assert "Retired one" in inactive and "Live one" not in inactive
    assert "Live one" in active and "Retired one" not in active
    assert "Live one" in everything and "Retired one" in everything


def test_the_list_has_pages(signed_in, api):
    for number in range(23):
        factories.template(api, steps=0, name=f"Sequence {number:02d}")

    first = html_of(signed_in.get("/templates", headers=HTMX))
    second = html_of(signed_in.get("/templates?page=2", headers=HTMX))

    assert first.count("<tr>") - 1 == 20
    assert "Page 1 of 2 · 23 in all" in first
    assert 'hx-get="/templates?page=2" hx-target="#rows"' in first
    assert second.count("<tr>") - 1 == 3
    assert "Nothing on this page" in html_of(signed_in.get("/templates?page=9", headers=HTMX))


def test_an_empty_list_invites_a_first_template(signed_in):
    html = html_of(signed_in.get("/templates"))

    assert "No templates yet" in html
    assert '<form id="new-template"' in html


def test_a_bad_page_number_is_a_400(signed_in):
    assert signed_in.get("/templates?page=zero").status_code == 400


# Creating a template


def new_template_form(token: str, **overrides) -> dict:
    form = {
        "csrf_token": token,
        "name": "Q3 founders",
        "type": "email",
        "description": "Warm intro, then two nudges.",
        "send_window_enabled": "1",
        "settings.send_window.days": ["", "1", "3", "5"],
        "settings.send_window.start": "08:30",
        "settings.send_window.end": "12:00",
        "settings.send_window.timezone": "Europe/Paris",
        "settings.daily_cap": "50",
        "settings.track_opens": "1",
        "settings.stop_on": ["", "reply", "unsubscribe"],
    }
    form.update(overrides)
    return form


def test_it_creates_a_template_with_its_settings_and_opens_it(signed_in, token, api):
    response = signed_in.post("/templates", data=new_template_form(token))

    assert response.status_code == 303
    template_id = response.headers["Location"].removeprefix("/templates/")
    template = template_of(api, template_id)
    assert template["name"] == "Q3 founders"
    assert template["description"] == "Warm intro, then two nudges."
    assert template["settings"] == {
        "send_window": {"days": [1, 3, 5], "start": "08:30", "end": "12:00", "timezone": "Europe/Paris"},
        "daily_cap": 50,
        "track_opens": True,
        "track_clicks": False,
        "stop_on": ["reply", "unsubscribe"],
    }
    page = html_of(signed_in.get(response.headers["Location"]))
    assert "Q3 founders" in page and "created" in page


def test_unticking_the_send_window_means_any_time_and_no_stop_rule_means_none(signed_in, token, api):
    form = new_template_form(token, **{"settings.stop_on": [""]})
    del form["send_window_enabled"]

    response = signed_in.post("/templates", data=form)

    settings = template_of(api, response.headers["Location"].removeprefix("/templates/"))["settings"]
    assert settings["send_window"] is None
    assert settings["stop_on"] == []


def test_htmx_creation_navigates_to_the_new_template(signed_in, token):
    response = signed_in.post("/templates", data=new_template_form(token), headers=HTMX)

    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/templates/")


def test_an_invalid_template_form_shows_messages_beside_the_fields_with_422_and_saves_nothing(signed_in, token, api):
    form = new_template_form(
        token,
        name="   ",
        **{
            "settings.daily_cap": "0",
            "settings.send_window.timezone": "Mars/Olympus",
            "settings.send_window.days": [""],
        },
    )

    page = signed_in.post("/templates", data=form)
    fragment = signed_in.post("/templates", data=form, headers=HTMX)

    assert page.status_code == fragment.status_code == 422
    assert is_page(page)
    html = html_of(fragment)
    assert html.lstrip().startswith('<form id="new-template"')
    assert "at least 1 character" in error_beside(html, "new-template-name")
    assert "greater than or equal to 1" in error_beside(html, "new-template-daily-cap")
    assert "unknown time zone" in error_beside(html, "new-template-window-timezone")
    assert "at least 1 item" in error_beside(html, "new-template-days")
    assert 'aria-invalid="true"' in html
    assert 'value="Mars/Olympus"' in html  # the form keeps what was typed
    assert 'role="alert"' in html
    assert api.get("/templates").get_json()["pagination"]["total"] == 0


def test_a_send_window_that_ends_when_it_starts_is_refused(signed_in, token, api):
    form = new_template_form(token, **{"settings.send_window.end": "08:30"})

    response = signed_in.post("/templates", data=form, headers=HTMX)

    assert response.status_code == 422
    assert "start and end must differ" in error_beside(html_of(response), "new-template-window")
    assert api.get("/templates").get_json()["pagination"]["total"] == 0


# The template page (sequence builder)


def test_the_template_page_shows_the_steps_in_order_with_icons_and_waits(signed_in, sequence):
    response = signed_in.get(f"/templates/{sequence['id']}")

    html = html_of(response)
    assert response.status_code == 200 and is_page(response)
    ids = re.findall(r'<li id="step-([0-9a-f-]{36})"', html)
    assert ids == [step["id"] for step in sequence["steps"]]
    assert html.count("step__icon--email") == 2 and html.count("step__icon--linkedin") == 1
    assert "Right after enrollment" in html
    assert "Wait 2 days</p>" in html and "Wait 1 day</p>" in html
    assert "connection request" in html
    for label in ("Move up", "Move down", "Edit", "Delete"):
        assert label in html
    assert 'draggable="true"' in html and "data-move-url=" in html
    assert 'hx-confirm="Delete step 1?' in html
    assert "<script>" not in html and " style=" not in html


@pytest.mark.parametrize("headers", [HTMX, HISTORY_RESTORE, {}])
def test_the_template_page_is_always_a_whole_page(signed_in, sequence, headers):
    response = signed_in.get(f"/templates/{sequence['id']}", headers=headers)

    assert response.status_code == 200 and is_page(response)


def test_waits_show_days_and_hours(signed_in, api):
    template = factories.template(api, steps=1)
    api.post(
        f"/templates/{template['id']}/sequences/email",
        json={"subject": "Nudge", "body": "Any news?", "delay_days": 3, "delay_hours": 4},
    )

    assert "Wait 3 days 4 hours" in html_of(signed_in.get(f"/templates/{template['id']}"))


def test_the_template_page_has_no_n_plus_1_queries(app, signed_in, api):
    small = factories.template(api, steps=2)
    large = factories.template(api, steps=12, linkedin=True)

    with count_statements(app) as small_count:
        assert signed_in.get(f"/templates/{small['id']}").status_code == 200
    with count_statements(app) as large_count:
        assert signed_in.get(f"/templates/{large['id']}").status_code == 200

    assert len(large_count) == len(small_count)
    assert len(large_count) <= 8, large_count
    assert sum("FROM sequence_steps" in statement for statement in large_count) == 1


@contextlib.contextmanager
def count_statements(app):
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_another_workspace_template_is_a_404_page(signed_in, outsider, api):
    other = factories.template(api.as_(outsider), steps=1)

    assert signed_in.get(f"/templates/{other['id']}").status_code == 404
    assert signed_in.get(f"/templates/{uuid.uuid4()}").status_code == 404


# Template settings and deletion


def settings_form(token: str, **overrides) -> dict:
    form = new_template_form(token, name="Renamed", is_active="1", description="")
    form.update(overrides)
    return form


def test_saving_settings_with_htmx_returns_the_settings_fragment_and_a_toast(signed_in, token, sequence, api):
    response = signed_in.post(f"/templates/{sequence['id']}", data=settings_form(token), headers=HTMX)

    html = html_of(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="template-settings"')
    assert "Renamed" in html
    assert toast(response) == {"message": "Template saved.", "level": "success"}
    template = template_of(api, sequence["id"])
    assert template["name"] == "Renamed"
    assert template["description"] is None
    assert template["settings"]["daily_cap"] == 50


def test_saving_settings_without_javascript_redirects_back(signed_in, token, sequence):
    response = signed_in.post(f"/templates/{sequence['id']}", data=settings_form(token))

    assert response.status_code == 303
    assert response.headers["Location"] == f"/templates/{sequence['id']}"


def test_saving_settings_keeps_the_settings_the_form_does_not_show(signed_in, token, api):
    template = factories.template(api, steps=0, settings={"from_email": "sales@acme.test", "daily_cap": 10})

    signed_in.post(f"/templates/{template['id']}", data=settings_form(token, **{"settings.daily_cap": ""}))

    settings = template_of(api, template["id"])["settings"]
    assert settings["from_email"] == "sales@acme.test"
    assert "daily_cap" not in settings


def test_deactivating_a_template_from_its_settings(signed_in, token, sequence, api):
    form = settings_form(token)
    del form["is_active"]

    signed_in.post(f"/templates/{sequence['id']}", data=form)

    assert template_of(api, sequence["id"])["is_active"] is False


def test_invalid_settings_are_refused_with_422_and_nothing_changes(signed_in, token, sequence, api):
    before = template_of(api, sequence["id"])
    form = settings_form(token, name="", **{"settings.send_window.start": "9am"})

    response = signed_in.post(f"/templates/{sequence['id']}", data=form, headers=HTMX)

    html = html_of(response)
    assert response.status_code == 422
    assert html.lstrip().startswith('<section id="template-settings"')
    assert '<details class="panel panel--collapsible" open>' in html
    assert "at least 1 character" in error_beside(html, "settings-name")
    assert "should match pattern" in error_beside(html, "settings-window-start")
    assert template_of(api, sequence["id"]) == before


def test_deleting_a_template(signed_in, token, sequence, api):
    response = signed_in.post(f"/templates/{sequence['id']}/delete", data={"csrf_token": token})

    assert response.status_code == 303 and response.headers["Location"] == "/templates"
    assert api.get(f"/templates/{sequence['id']}").status_code == 404
    assert "deleted" in html_of(signed_in.get("/templates"))


def test_deleting_a_template_with_htmx_navigates_to_the_list(signed_in, token, sequence):
    response = signed_in.post(f"/templates/{sequence['id']}/delete", data={"csrf_token": token}, headers=HTMX)

    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/templates"


def test_a_template_that_campaigns_use_is_not_deleted_and_the_page_says_why(signed_in, token, api):
    instance = factories.instance(api)
    url = f"/templates/{instance['template_id']}/delete"

    page = signed_in.post(url, data={"csrf_token": token})
    fragment = signed_in.post(url, data={"csrf_token": token}, headers=HTMX)

    assert page.status_code == fragment.status_code == 409
    assert is_page(page)
    assert "Campaigns use this template, so it can&#39;t be deleted" in html_of(page)
    # htmx does not swap a 409; its error toast reads #error-message.
    assert re.search(r'id="error-message"[^>]*>Campaigns use this template', html_of(fragment))
    assert api.get(f"/templates/{instance['template_id']}").status_code == 200


# Steps: add, edit, delete


def email_step_form(token: str, **overrides) -> dict:
    form = {
        "csrf_token": token,
        "delay_days": "3",
        "delay_hours": "2",
        "subject": "Quick question, {{ first_name | default('there') }}",
        "body": "Hi {{ first_name }},\n\nDid you see **this**?",
        "preview_contact": "",
        "preview_id": "new-email-step-preview",
    }
    form.update(overrides)
    return form


def test_adding_an_email_step_with_htmx_returns_the_sequence_with_it(signed_in, token, sequence, api):
    response = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=email_step_form(token), headers=HTMX)

    html = html_of(response)
    steps = steps_of(api, sequence["id"])
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="sequence"')
    assert len(steps) == 4
    added = steps[-1]
    assert (added["step_number"], added["delay_days"], added["delay_hours"]) == (4, 3, 2)
    assert added["subject"] == "Quick question, {{ first_name | default('there') }}"
    assert f'id="step-{added["id"]}"' in html
    assert "Wait 3 days 2 hours" in html
    assert toast(response)["message"] == "Step 4 added."
    # The add form comes back empty, ready for the next step.
    assert "Did you see" not in html.split('<form id="new-email-step"')[1]


def test_adding_a_step_without_javascript_redirects_to_it(signed_in, token, sequence, api):
    response = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=email_step_form(token))

    added = steps_of(api, sequence["id"])[-1]
    assert response.status_code == 303
    assert response.headers["Location"] == f"/templates/{sequence['id']}#step-{added['id']}"


def test_adding_a_linkedin_step(signed_in, token, sequence, api):
    form = {"csrf_token": token, "delay_days": "1", "action_type": "inmail", "message": "Hello {{ first_name }}"}

    response = signed_in.post(f"/templates/{sequence['id']}/steps/linkedin", data=form, headers=HTMX)

    added = steps_of(api, sequence["id"])[-1]
    assert response.status_code == 200
    assert (added["channel"], added["action_type"], added["message"]) == (
        "linkedin",
        "inmail",
        "Hello {{ first_name }}",
    )
    assert "inmail" in html_of(response)


def test_a_template_syntax_attack_in_a_step_is_a_field_error_with_422_and_nothing_is_saved(
    signed_in, token, sequence, api
):
    form = email_step_form(token, subject="Hello", body=SSTI)

    fragment = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=form, headers=HTMX)
    page = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=form)

    html = html_of(fragment)
    assert fragment.status_code == page.status_code == 422
    assert html.lstrip().startswith('<form id="new-email-step"')
    assert fragment.headers["HX-Retarget"] == "#new-email-step"
    assert fragment.headers["HX-Reswap"] == "outerHTML"
    assert "attribute and item access is not allowed" in error_beside(html, "new-email-step-body")
    assert "&lt;class" not in html and "<class" not in html
    assert is_page(page) and '<details class="panel panel--collapsible" open>' in html_of(page)
    assert len(steps_of(api, sequence["id"])) == 3


def test_a_bad_subject_and_a_bad_delay_are_shown_beside_their_fields(signed_in, token, sequence, api):
    form = email_step_form(token, subject="Two\nlines", delay_days="400")

    response = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=form, headers=HTMX)

    html = html_of(response)
    assert response.status_code == 422
    assert "single line" in error_beside(html, "new-email-step-subject")
    assert "less than or equal to 365" in error_beside(html, "new-email-step-delay-days")
    assert len(steps_of(api, sequence["id"])) == 3


def test_schema_and_template_syntax_errors_show_together(signed_in, token, sequence):
    form = email_step_form(token, subject="Two\nlines", body="Hi {{ first_name ")

    response = signed_in.post(f"/templates/{sequence['id']}/steps/email", data=form, headers=HTMX)

    html = html_of(response)
    assert response.status_code == 422
    assert "single line" in error_beside(html, "new-email-step-subject")
    assert "line 1" in error_beside(html, "new-email-step-body")


def test_a_bad_linkedin_message_is_shown_beside_the_message(signed_in, token, sequence, api):
    form = {"csrf_token": token, "action_type": "message", "message": "{% for x in y %}{% endfor %}"}

    response = signed_in.post(f"/templates/{sequence['id']}/steps/linkedin", data=form, headers=HTMX)

    assert response.status_code == 422
    assert "loops" in error_beside(html_of(response), "new-linkedin-step-message")
    assert len(steps_of(api, sequence["id"])) == 3


def test_edit_swaps_the_step_for_its_form_and_cancel_swaps_it_back(signed_in, sequence):
    step = sequence["steps"][0]
    base = f"/templates/{sequence['id']}/steps/email/{step['id']}"

    edit = signed_in.get(f"{base}/edit", headers=HTMX)
    cancel = signed_in.get(base, headers=HTMX)

    assert edit.status_code == 200
    form_html = html_of(edit)
    assert form_html.lstrip().startswith(f'<li id="step-{step["id"]}"')
    assert f'<form id="step-{step["id"]}-form"' in form_html
    assert 'value="Step 1 for {{ first_name }}"' in form_html
    assert "autofocus" in form_html
    assert f'id="step-{step["id"]}-preview"' in form_html and "Step 1 for Alex" in form_html
    assert cancel.status_code == 200
    assert "<form id=" not in html_of(cancel)
    assert "Step 1 for {{ first_name }}" in html_of(cancel)


def test_without_javascript_edit_is_the_page_with_the_form_and_cancel_goes_back(signed_in, sequence):
    step = sequence["steps"][1]
    base = f"/templates/{sequence['id']}/steps/email/{step['id']}"

    page = signed_in.get(f"{base}/edit")
    restored = signed_in.get(f"{base}/edit", headers=HISTORY_RESTORE)
    cancel = signed_in.get(base)

    assert is_page(page) and is_page(restored)
    assert f'<form id="step-{step["id"]}-form"' in html_of(page)
    assert cancel.status_code == 303
    assert cancel.headers["Location"] == f"/templates/{sequence['id']}#step-{step['id']}"


def test_saving_an_edited_step_shows_it_again(signed_in, token, sequence, api):
    step = sequence["steps"][0]
    form = email_step_form(token, subject="New subject", body="New body", is_active="1")

    response = signed_in.post(f"/templates/{sequence['id']}/steps/email/{step['id']}", data=form, headers=HTMX)

    html = html_of(response)
    saved = steps_of(api, sequence["id"])[0]
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li id="step-{step["id"]}"')
    assert "New subject" in html and "<form id=" not in html
    assert (saved["subject"], saved["body"], saved["delay_days"]) == ("New subject", "New body", 3)
    assert toast(response)["message"] == "Step 1 saved."


def test_an_edited_step_can_be_deactivated_and_shows_an_inactive_badge(signed_in, token, sequence, api):
    step = sequence["steps"][1]
    form = email_step_form(token)

    response = signed_in.post(f"/templates/{sequence['id']}/steps/email/{step['id']}", data=form, headers=HTMX)

    assert steps_of(api, sequence["id"])[1]["is_active"] is False
    assert "Inactive" in html_of(response) and "step--inactive" in html_of(response)


def test_an_invalid_edit_keeps_the_form_with_422_and_changes_nothing(signed_in, token, sequence, api):
    step = sequence["steps"][0]
    form = email_step_form(token, subject="{{ first_name", body="", preview_id=f"step-{step['id']}-preview")

    response = signed_in.post(f"/templates/{sequence['id']}/steps/email/{step['id']}", data=form, headers=HTMX)

    html = html_of(response)
    assert response.status_code == 422
    assert f'<form id="step-{step["id"]}-form"' in html
    assert "at least 1 character" in error_beside(html, f"step-{step['id']}-body")
    assert steps_of(api, sequence["id"])[0] == sequence["steps"][0]


def test_editing_a_linkedin_step(signed_in, token, sequence, api):
    step = sequence["steps"][2]
    form = {
        "csrf_token": token,
        "delay_days": "4",
        "delay_hours": "0",
        "action_type": "message",
        "message": "",
        "is_active": "1",
    }

    response = signed_in.post(f"/templates/{sequence['id']}/steps/linkedin/{step['id']}", data=form, headers=HTMX)

    saved = steps_of(api, sequence["id"])[2]
    assert response.status_code == 200
    assert (saved["action_type"], saved["message"], saved["delay_days"]) == ("message", None, 4)
    assert "No message" in html_of(response)


def test_a_step_is_reached_only_through_its_own_channel(signed_in, sequence):
    linkedin = sequence["steps"][2]

    assert signed_in.get(f"/templates/{sequence['id']}/steps/email/{linkedin['id']}/edit").status_code == 404


def test_deleting_a_step_returns_the_steps_renumbered(signed_in, token, sequence, api):
    first = sequence["steps"][0]

    response = signed_in.post(
        f"/templates/{sequence['id']}/steps/email/{first['id']}/delete", data={"csrf_token": token}, headers=HTMX
    )

    html = html_of(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="steps"')
    assert first["id"] not in html
    assert [s["id"] for s in steps_of(api, sequence["id"])] == [s["id"] for s in sequence["steps"][1:]]
    assert re.findall(r'Step (\d)<span class="step__channel"', html) == ["1", "2"]
    assert toast(response) == {"message": "Step 1 deleted.", "level": "success"}


def test_deleting_a_step_without_javascript_redirects(signed_in, token, sequence):
    step = sequence["steps"][1]

    response = signed_in.post(
        f"/templates/{sequence['id']}/steps/email/{step['id']}/delete", data={"csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/templates/{sequence['id']}#steps"


def test_a_step_that_already_went_out_is_deactivated_instead_of_deleted(app, signed_in, token, api, owner):
    template = factories.template(api, steps=2)
    instance = factories.instance(api, template_data=template, status="active")
    factories.enroll(api, instance["id"], 1)
    step = template["steps"][0]
    with app.app_context():
        enrollment_id = db.session.scalar(sa.select(CampaignEnrollment.id))
        db.session.add(
            Delivery(workspace_id=owner.workspace_id, enrollment_id=enrollment_id, step_id=uuid.UUID(step["id"]))
        )
        db.session.commit()

    response = signed_in.post(
        f"/templates/{template['id']}/steps/email/{step['id']}/delete", data={"csrf_token": token}, headers=HTMX
    )

    steps = steps_of(api, template["id"])
    assert response.status_code == 200
    assert [s["id"] for s in steps] == [s["id"] for s in template["steps"]]
    assert steps[0]["is_active"] is False
    assert toast(response)["level"] == "warning" and "deactivated" in toast(response)["message"]
    assert "Inactive" in html_of(response)


# Reordering


def test_move_down_returns_the_steps_in_their_new_order(signed_in, token, sequence, api):
    first = sequence["steps"][0]

    response = signed_in.post(
        f"/templates/{sequence['id']}/steps/{first['id']}/move",
        data={"csrf_token": token, "position": "2", "direction": "down"},
        headers=HTMX,
    )

    html = html_of(response)
    order = [s["id"] for s in steps_of(api, sequence["id"])]
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="steps"')
    assert order == [sequence["steps"][1]["id"], first["id"], sequence["steps"][2]["id"]]
    assert re.findall(r'<li id="step-([0-9a-f-]{36})"', html) == order
    assert toast(response)["message"] == "Step moved to position 2."
    # Focus stays on the button that was pressed.
    moved = html.split(f'<li id="step-{first["id"]}"')[1].split("</li>")[0]
    assert re.search(r"<button[^>]*autofocus>\s*<span aria-hidden=\"true\">↓</span> Move down", moved)


def test_move_up_without_javascript_redirects_to_the_step(signed_in, token, sequence, api):
    last = sequence["steps"][2]

    response = signed_in.post(
        f"/templates/{sequence['id']}/steps/{last['id']}/move", data={"csrf_token": token, "position": "2"}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/templates/{sequence['id']}#step-{last['id']}"
    assert steps_of(api, sequence["id"])[1]["id"] == last["id"]


def test_a_drop_moves_a_step_to_any_position(signed_in, token, sequence, api):
    last = sequence["steps"][2]

    signed_in.post(
        f"/templates/{sequence['id']}/steps/{last['id']}/move",
        data={"csrf_token": token, "position": "1"},
        headers=HTMX,
    )

    assert [s["id"] for s in steps_of(api, sequence["id"])] == [
        last["id"],
        sequence["steps"][0]["id"],
        sequence["steps"][1]["id"],
    ]


def test_the_first_step_cannot_move_up_and_the_last_cannot_move_down(signed_in, sequence):
    html = html_of(signed_in.get(f"/templates/{sequence['id']}"))
    buttons = re.findall(r"<button[^>]*?( disabled)?>\s*<span aria-hidden=\"true\">[↑↓]</span> (Move \w+)", html)

    assert buttons[0] == (" disabled", "Move up")
    assert buttons[-1] == (" disabled", "Move down")
    assert sum(1 for disabled, _ in buttons if disabled) == 2


@pytest.mark.parametrize("position", ["", "zero", "0", "5000"])
def test_a_bad_position_is_a_400_and_moves_nothing(signed_in, token, sequence, api, position):
    step = sequence["steps"][0]

    response = signed_in.post(
        f"/templates/{sequence['id']}/steps/{step['id']}/move", data={"csrf_token": token, "position": position}
    )

    assert response.status_code == 400
    assert steps_of(api, sequence["id"])[0]["id"] == step["id"]


# Live preview


def preview(client, template_id: str, token: str, headers=HTMX, **fields):
    data = {"csrf_token": token, "subject": "", "body": "", "preview_id": "new-email-step-preview", **fields}
    return client.post(f"/templates/{template_id}/preview", data=data, headers=headers)


def test_the_preview_renders_for_a_chosen_contact_and_returns_only_the_fragment(signed_in, token, sequence, api):
    contact = api.post("/contacts", json={"email": "ann@initech.test", "first_name": "Ann", "company": "Initech"})
    contact_id = contact.get_json()["data"]["id"]

    response = preview(
        signed_in,
        sequence["id"],
        token,
        subject="Hi {{ first_name }}",
        body="How is **{{ company }}**?",
        preview_contact=contact_id,
    )

    html = html_of(response)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div class="preview" id="new-email-step-preview"')
    assert "Hi Ann" in html
    assert "How is <strong>Initech</strong>?" in html
    assert "Ann &lt;ann@initech.test&gt;" in html
    assert "Unsubscribe" in html
    assert "unresolved" not in html


def test_the_preview_signs_with_the_sender_a_campaign_of_the_template_would_use(signed_in, token, api, app, owner):
    from webapp.services.workspaces import update_sender_defaults

    with app.app_context():
        update_sender_defaults(owner.workspace, {"from_name": "Ada at Acme", "from_email": "ada@acme.test"})
    plain = api.post("/templates", json={"name": "Plain"}).get_json()["data"]
    signed = api.post("/templates", json={"name": "Signed", "settings": {"from_name": "Bo"}}).get_json()["data"]

    for template, name in ((plain, "Ada at Acme"), (signed, "Bo")):
        html = html_of(preview(signed_in, template["id"], token, subject="Hi", body="Cheers, {{ sender_name }}"))
        assert f"Cheers, {name}" in html


def test_the_preview_highlights_and_lists_unresolved_variables(signed_in, token, sequence, api):
    contact = api.post("/contacts", json={"email": "nameless@initech.test"}).get_json()["data"]

    response = preview(
        signed_in,
        sequence["id"],
        token,
        subject="Hello",
        body="Hi {{ first_name }} from {{ custom.city }}",
        preview_contact=contact["id"],
    )

    html = html_of(response)
    assert response.status_code == 200
    assert '<mark class="unresolved">{{ first_name }}</mark>' in html
    assert '<mark class="unresolved">{{ custom.city }}</mark>' in html
    assert "<li><code>first_name</code></li>" in html and "<li><code>custom.city</code></li>" in html


def test_the_preview_uses_a_sample_contact_by_default(signed_in, token, sequence):
    html = html_of(preview(signed_in, sequence["id"], token, subject="Hi {{ first_name }}", body="x"))

    assert "Hi Alex" in html and "sample contact" in html


def test_the_preview_refuses_a_template_injection_with_422(signed_in, token, sequence):
    response = preview(signed_in, sequence["id"], token, subject="Hi", body=SSTI)

    html = html_of(response)
    assert response.status_code == 422
    assert 'role="alert"' in html
    assert "Body: line 1: attribute and item access is not allowed" in html
    assert "&lt;class" not in html and "<class '" not in html and "__mro__" not in html


def test_the_preview_escapes_contact_values(signed_in, token, sequence, api):
    contact = api.post("/contacts", json={"email": "x@initech.test", "first_name": "<img src=x onerror=alert(1)>"})

    html = html_of(
        preview(
            signed_in,
            sequence["id"],
            token,
            subject="S",
            body="Hi {{ first_name }}",
            preview_contact=contact.get_json()["data"]["id"],
        )
    )

    assert "<img src=x" not in html and "onerror=alert(1)>" not in html.replace("&lt;", "")


def test_the_live_preview_is_wired_to_the_subject_and_body(signed_in, sequence):
    html = html_of(signed_in.get(f"/templates/{sequence['id']}"))
    subject = re.search(r'<input[^>]*id="new-email-step-subject"[^>]*>', html).group(0)

    assert f'hx-post="/templates/{sequence["id"]}/preview"' in subject
    assert 'hx-trigger="input changed delay:400ms"' in subject
    assert 'hx-target="#new-email-step-preview"' in subject


def test_without_javascript_the_preview_is_the_page_with_the_form_as_typed(signed_in, token, sequence):
    response = preview(signed_in, sequence["id"], token, headers={}, subject="Hi {{ first_name }}", body="Body text")

    html = html_of(response)
    assert response.status_code == 200 and is_page(response)
    assert 'value="Hi {{ first_name }}"' in html and ">Body text</textarea>" in html
    assert "Hi Alex" in html


def test_without_javascript_an_edit_preview_reopens_that_step_form(signed_in, token, sequence):
    step = sequence["steps"][0]

    response = preview(
        signed_in,
        sequence["id"],
        token,
        headers={},
        subject="Edited",
        body="x",
        preview_id=f"step-{step['id']}-preview",
    )

    assert f'<form id="step-{step["id"]}-form"' in html_of(response)
    assert 'value="Edited"' in html_of(response)


def test_another_workspace_contact_cannot_be_previewed(signed_in, token, sequence, api, outsider):
    theirs = api.as_(outsider).post("/contacts", json={"email": "secret@globex.test", "first_name": "Hank"})

    response = preview(
        signed_in,
        sequence["id"],
        token,
        subject="Hi {{ first_name }}",
        body="x",
        preview_contact=theirs.get_json()["data"]["id"],
    )

    assert response.status_code == 404
    assert "Hank" not in html_of(response)


def test_the_contact_picker_offers_up_to_50_workspace_contacts(signed_in, sequence, api):
    for number in range(52):
        api.post("/contacts", json={"email": f"p{number}@initech.test"})

    html = html_of(signed_in.get(f"/templates/{sequence['id']}"))
    picker = html.split('id="new-email-step-preview-contact"')[1].split("</select>")[0]

    assert picker.count("<option") == 51  # the sample contact and 50 others


# Authorization, CSRF, sign-in


def owner_routes(template: dict) -> list[tuple[str, str]]:
    template_id = template["id"]
    email, linkedin = template["steps"][0]["id"], template["steps"][-1]["id"]
    return [
        ("GET", f"/templates/{template_id}"),
        ("POST", f"/templates/{template_id}"),
        ("POST", f"/templates/{template_id}/delete"),
        ("POST", f"/templates/{template_id}/preview"),
        ("POST", f"/templates/{template_id}/steps/email"),
        ("POST", f"/templates/{template_id}/steps/linkedin"),
        ("GET", f"/templates/{template_id}/steps/email/{email}"),
        ("GET", f"/templates/{template_id}/steps/email/{email}/edit"),
        ("POST", f"/templates/{template_id}/steps/email/{email}"),
        ("POST", f"/templates/{template_id}/steps/email/{email}/delete"),
        ("GET", f"/templates/{template_id}/steps/linkedin/{linkedin}/edit"),
        ("POST", f"/templates/{template_id}/steps/linkedin/{linkedin}"),
        ("POST", f"/templates/{template_id}/steps/linkedin/{linkedin}/delete"),
        ("POST", f"/templates/{template_id}/steps/{email}/move"),
    ]


@pytest.mark.parametrize("htmx", [False, True])
def test_an_outsider_gets_404_for_every_route_of_the_owners_template(client, login, outsider, sequence, api, htmx):
    login(outsider)
    token = csrf_token(client, "/templates")
    valid = email_step_form(token, action_type="message", position="1", name="Stolen")

    for method, url in owner_routes(sequence):
        response = client.open(
            url, method=method, data=valid if method == "POST" else None, headers=HTMX if htmx else {}
        )
        assert response.status_code == 404, (method, url, response.status_code)
        assert "Founders outreach" not in html_of(response)

    assert template_of(api, sequence["id"]) == sequence


def test_an_outsider_cannot_reach_the_owners_steps_through_their_own_template(client, login, outsider, sequence, api):
    theirs = factories.template(api.as_(outsider), steps=1)
    login(outsider)
    token = csrf_token(client, "/templates")
    step = sequence["steps"][0]["id"]

    edit = client.get(f"/templates/{theirs['id']}/steps/email/{step}/edit")
    move = client.post(f"/templates/{theirs['id']}/steps/{step}/move", data={"csrf_token": token, "position": "1"})
    delete = client.post(f"/templates/{theirs['id']}/steps/email/{step}/delete", data={"csrf_token": token})

    assert edit.status_code == move.status_code == delete.status_code == 404
    assert template_of(api, sequence["id"]) == sequence


def test_a_post_without_the_csrf_token_is_refused(signed_in, sequence, api):
    step = sequence["steps"][0]["id"]

    for method, url in [*owner_routes(sequence), ("POST", "/templates")]:
        if method != "POST":
            continue
        response = signed_in.post(url, data={"name": "x", "subject": "x", "body": "x", "position": "2"})
        assert response.status_code == 400, url

    assert template_of(api, sequence["id"]) == sequence
    assert steps_of(api, sequence["id"])[0]["id"] == step


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_signing_in_is_required(client, sequence, method):
    token = csrf_token(client, "/login")
    data = {"csrf_token": token} if method == "POST" else None
    urls = [("GET", "/templates"), *owner_routes(sequence), ("POST", "/templates")]

    for route_method, url in urls:
        if route_method != method:
            continue
        browser = client.open(url, method=method, data=data)
        htmx = client.open(
            url, method=method, data=data, headers={**HTMX, "HX-Current-URL": "http://localhost/templates"}
        )
        assert browser.status_code == 303 and browser.headers["Location"].startswith("/login"), url
        assert htmx.status_code == 401, url
        assert htmx.headers["HX-Redirect"].startswith("/login"), url


def test_an_anonymous_visit_comes_back_to_the_list_after_signing_in(client):
    response = client.get("/templates?search=abc")

    assert response.headers["Location"] == "/login?next=/templates?search%3Dabc"
