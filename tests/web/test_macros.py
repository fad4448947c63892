"""The shared template macros: status badges, pagination, empty states and form fields."""

import re

import pytest
from flask import render_template_string


def render(app, source: str, path: str = "/contacts", **context) -> str:
    with app.test_request_context(path):
        return render_template_string(source, **context)


@pytest.mark.parametrize(
    ("status", "tone", "label"),
    [
        ("active", "success", "Active"),
        ("paused", "warning", "Paused"),
        ("bounced", "danger", "Bounced"),
        ("replied", "accent", "Replied"),
        ("something_new", "neutral", "Something new"),
    ],
)
def test_a_status_badge_has_a_tone_and_a_readable_label(app, status, tone, label):
    html = render(app, "{{ ui.status_badge(status) }}", status=status)

    assert html == f'<span class="badge badge--{tone}">{label}</span>'


def test_a_status_badge_accepts_enums(app):
    from webapp.models.enums import InstanceStatus

    assert "badge--success" in render(app, "{{ ui.status_badge(s) }}", s=InstanceStatus.ACTIVE)


def test_pagination_keeps_the_query_and_marks_the_current_page(app):
    app.add_url_rule("/contacts", "contacts_stub", lambda: "")
    html = render(app, "{{ ui.pagination(5, 12, total=240) }}", path="/contacts?q=ann&page=5")

    assert '<span class="pagination__link is-current" aria-current="page">5</span>' in html
    assert 'href="/contacts?q=ann&amp;page=4"' in html
    assert 'href="/contacts?q=ann&amp;page=6"' in html
    assert re.findall(r'aria-label="Page (\d+)"', html) == ["1", "3", "4", "6", "7", "12"]
    assert "Page 5 of 12 · 240 in all" in html
    assert "hx-get" not in html


def test_pagination_can_swap_a_fragment_with_htmx(app):
    app.add_url_rule("/contacts", "contacts_stub", lambda: "")
    html = render(app, '{{ ui.pagination(1, 2, target="#contacts") }}', path="/contacts")

    assert 'hx-get="/contacts?page=2" hx-target="#contacts" hx-swap="outerHTML" hx-push-url="true"' in html
    assert '<span class="pagination__link is-disabled" aria-disabled="true">Previous</span>' in html


def test_one_page_needs_no_pagination(app):
    assert render(app, "{{ ui.pagination(1, 1) }}").strip() == ""


def test_an_empty_state_offers_the_next_step(app):
    html = render(app, '{{ ui.empty_state("No contacts yet", "Import a CSV.", "/contacts/import", "Import") }}')

    assert '<h2 class="empty-state__title">No contacts yet</h2>' in html
    assert '<a class="button button--primary" href="/contacts/import">Import</a>' in html


def test_an_input_ties_its_label_hint_and_errors_together(app):
    html = render(
        app,
        '{{ forms.input("first_name", "First name", value=v, errors=["Too long."], hint="As it appears in emails.") }}',
        v='<b>"x"</b>',
    )

    assert '<label class="field__label" for="field-first-name">First name' in html
    assert 'id="field-first-name" name="first_name" value="&lt;b&gt;&#34;x&#34;&lt;/b&gt;"' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="field-first-name-hint field-first-name-error"' in html
    assert '<ul class="field__errors" id="field-first-name-error">' in html


def test_a_select_marks_the_selected_option(app):
    html = render(app, '{{ forms.select("type", "Type", [("email", "Email"), ("linkedin", "LinkedIn")], "linkedin") }}')

    assert '<option value="linkedin" selected>LinkedIn</option>' in html
    assert '<option value="email">Email</option>' in html


def test_passwords_are_never_echoed(app):
    html = render(app, '{{ forms.input("password", "Password", value="secret", type="password", required=True) }}')

    assert "secret" not in html
    assert " required" in html


def test_validation_details_become_errors_per_field():
    from webapp.web import errors_by_field

    details = [{"field": "name", "message": "Too long."}, {"field": "name", "message": "Taken."}, {"message": "Bad."}]

    assert errors_by_field(details) == {"name": ["Too long.", "Taken."], "__all__": ["Bad."]}


def test_hx_trigger_adds_events_without_dropping_earlier_ones(app):
    from flask import make_response

    from webapp.htmx import hx_trigger

    with app.test_request_context("/"):
        response = hx_trigger(make_response(""), "toast", {"message": "Saved.", "level": "success"})
        hx_trigger(response, "contacts-changed")

    assert response.headers["HX-Trigger"] == '{"toast":{"message":"Saved.","level":"success"},"contacts-changed":null}'
