"""The Clone buttons on the template page and the campaign page."""

import re

import pytest

from tests import factories
from tests.web.conftest import csrf_token, sign_in


@pytest.fixture
def web(login, owner):
    return login(owner)


@pytest.fixture
def campaign(api):
    instance = factories.instance(api, name="Spring outreach", status="active", settings={"daily_cap": 12})
    factories.enroll(api, instance["id"], 2)
    return instance


def clone_form(html: str, action: str) -> bool:
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    return form is not None and 'name="csrf_token"' in form.group(1) and "Clone" in form.group(1)


def test_the_template_page_clones_the_template_and_opens_the_copy(web, api, campaign):
    page = f"/templates/{campaign['template_id']}"
    assert clone_form(web.get(page).get_data(as_text=True), f"{page}/clone")
    response = web.post(f"{page}/clone", data={"csrf_token": csrf_token(web, page)})
    assert response.status_code == 303
    copy = api.get("/templates?search=(copy)").get_json()["data"][0]
    assert response.headers["Location"] == f"/templates/{copy['id']}"
    shown = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "Template copied as “" in shown and "Step 2 for {{ first_name }}" in shown
    assert len(api.get(f"/templates/{copy['id']}").get_json()["data"]["steps"]) == 2


def test_the_campaign_page_clones_the_campaign_as_a_draft_without_contacts(web, api, campaign):
    page = f"/campaigns/{campaign['id']}"
    assert clone_form(web.get(page).get_data(as_text=True), f"{page}/clone")
    response = web.post(f"{page}/clone", data={"csrf_token": csrf_token(web, page)}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    copy = api.get("/instances?search=(copy)").get_json()["data"][0]
    assert response.headers["HX-Redirect"] == f"/campaigns/{copy['id']}"
    assert (copy["name"], copy["status"], copy["settings"]) == ("Spring outreach (copy)", "draft", {"daily_cap": 12})
    assert api.get(f"/instances/{copy['id']}/enrollments").get_json()["pagination"]["total"] == 0
    assert "a draft: enroll contacts" in web.get(f"/campaigns/{copy['id']}").get_data(as_text=True)


def test_a_completed_campaign_can_still_be_cloned(web, api):
    done = factories.instance(api, status="completed")
    assert clone_form(web.get(f"/campaigns/{done['id']}").get_data(as_text=True), f"/campaigns/{done['id']}/clone")


def test_a_draft_with_an_inactive_template_says_why_it_was_not_copied(web, api):
    campaign = factories.instance(api, name="Spring outreach")  # a draft runs its template's steps
    api.put(f"/templates/{campaign['template_id']}", json={"is_active": False})
    page = f"/campaigns/{campaign['id']}"
    response = web.post(f"{page}/clone", data={"csrf_token": csrf_token(web, page)})
    assert (response.status_code, response.headers["Location"]) == (303, page)
    assert "The campaign was not copied. Template is inactive" in web.get(page).get_data(as_text=True)
    assert api.get("/instances").get_json()["pagination"]["total"] == 1


def test_clone_needs_a_csrf_token_and_a_workspace_of_ones_own(app, web, api, campaign, outsider):
    for path in (f"/templates/{campaign['template_id']}/clone", f"/campaigns/{campaign['id']}/clone"):
        assert web.post(path).status_code == 400
    theirs = app.test_client()
    assert sign_in(theirs, outsider).status_code == 303
    token = csrf_token(theirs, "/campaigns")
    for path in (f"/templates/{campaign['template_id']}/clone", f"/campaigns/{campaign['id']}/clone"):
        assert theirs.post(path, data={"csrf_token": token}).status_code == 404
    assert api.get("/templates").get_json()["pagination"]["total"] == 1
    assert api.get("/instances").get_json()["pagination"]["total"] == 1
