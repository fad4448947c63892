"""The tasks page: LinkedIn steps made into tasks by the worker, then done or skipped from the list."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests import factories
from tests.web.conftest import csrf_token
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact, Task
from webapp.worker import Worker


def later(**delta) -> datetime:
    return datetime.now(UTC) + timedelta(**{"minutes": 1, **delta})


@pytest.fixture
def campaign(app, api):
    """An active campaign whose first step is a LinkedIn connection request, then an email a day later;
    the worker has turned the first step into one task per contact."""
    template = api.post("/templates", json={"name": "LinkedIn, then email"}).get_json()["data"]
    api.post(
        f"/templates/{template['id']}/sequences/linkedin",
        json={"action_type": "connection_request", "message": "Hi {{ first_name }}, shall we connect?"},
    )
    api.post(f"/templates/{template['id']}/sequences/email", json={"subject": "Hello", "body": "Hi", "delay_days": 1})
    instance = factories.instance(api, template_data=template, status="active", name="Spring outreach")
    contacts = [
        {
            "contact": {
                "email": f"person{n}@example.com",
                "first_name": f"Person{n}",
                "last_name": "Lee",
                "company": "Initech",
                "title": "CTO",
                "linkedin_url": f"https://www.linkedin.com/in/person{n}",
            }
        }
        for n in range(3)
    ]
    assert api.post(f"/instances/{instance['id']}/enrollments/bulk", json={"contacts": contacts}).status_code == 200
    assert Worker(app).run_once(now=later()).tasks == 3
    return instance


def tasks(api, **query) -> list[dict]:
    return api.get("/tasks", query_string={"status": "all", **query}).get_json()["data"]


def enrollment_of(app, task: dict) -> CampaignEnrollment:
    with app.app_context():
        enrollment = db.session.get(CampaignEnrollment, uuid.UUID(task["enrollment_id"]))
        db.session.expunge(enrollment)
        return enrollment


def post(client, path: str, headers=None):
    return client.post(path, data={"csrf_token": csrf_token(client, "/tasks")}, headers=headers or {})


def test_it_needs_a_login(client):
    response = client.get("/tasks?due=today")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/tasks?due%3Dtoday"


def test_each_task_shows_the_contact_the_profile_and_the_message_to_copy(client, owner, login, campaign):
    login(owner)

    html = client.get("/tasks").get_data(as_text=True)

    assert "3 open tasks" in html
    assert '<h3 class="task-card__title">Connection request: Person0 Lee</h3>' in html
    assert "<span>Initech</span>" in html and "<span>Spring outreach, step 1</span>" in html
    assert (
        '<a href="https://www.linkedin.com/in/person0" target="_blank" rel="noopener noreferrer">LinkedIn profile'
        in html
    )
    messages = re.findall(
        r'<textarea class="[^"]*" id="(message-[0-9a-f-]+)" rows="\d+" readonly>([^<]*)</textarea>', html
    )
    assert sorted(text for _, text in messages) == [f"Hi Person{n}, shall we connect?" for n in range(3)]
    message = re.search(r'id="(message-[0-9a-f-]+)"', html)
    assert f'<label class="field__label" for="{message.group(1)}">Message to send</label>' in html
    # The Copy button appears with JavaScript (app.js); the read-only text is the fallback.
    assert f'data-copy="{message.group(1)}" hidden>Copy message</button>' in html


def test_the_api_gives_the_message_the_dashboard_shows(client, owner, login, api, campaign):
    login(owner)
    html = client.get("/tasks").get_data(as_text=True)
    shown = re.findall(
        r'<textarea class="[^"]*" id="message-([0-9a-f-]+)" rows="\d+" readonly>([^<]*)</textarea>', html
    )

    given = {task["id"]: task["message"] for task in tasks(api)}

    assert dict(shown) == given
    assert sorted(given.values()) == [f"Hi Person{n}, shall we connect?" for n in range(3)]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,hi", "//evil.test/x", "linkedin.com/in/x"])
def test_only_http_links_become_profile_links(app, client, owner, login, campaign, url):
    with app.app_context():
        db.session.execute(sa.update(Contact).where(Contact.email == "person0@example.com").values(linkedin_url=url))
        db.session.commit()
    login(owner)

    html = client.get("/tasks").get_data(as_text=True)

    assert f'href="{url}"' not in html
    assert "No LinkedIn profile on file (person0@example.com)." in html


def test_done_moves_the_enrollment_on_and_redirects_without_javascript(app, api, client, owner, login, campaign):
    task = tasks(api)[0]
    login(owner)

    response = post(client, f"/tasks/{task['id']}/done?due=today")

    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks?due=today"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Connection request done: the contact moves on." in page
    assert "2 open tasks matching the filters" in page
    assert tasks(api, status="done")[0]["id"] == task["id"]
    enrollment = enrollment_of(app, task)
    assert enrollment.current_step == 1 and enrollment.next_action_at is not None
    assert Worker(app).run_once(now=later(days=1, minutes=5)).sent == 1


def test_skip_answers_htmx_with_the_updated_list_and_a_toast(app, api, client, owner, login, campaign):
    first, second, _ = tasks(api)
    login(owner)

    response = post(client, f"/tasks/{second['id']}/skip", headers={"HX-Request": "true"})

    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="task-list"')
    assert "2 open tasks" in body and second["id"] not in body and first["id"] in body
    toast = json.loads(response.headers["HX-Trigger"])["toast"]
    assert toast == {"message": "Connection request skipped: the contact moves on.", "level": "success"}
    assert tasks(api, status="skipped")[0]["id"] == second["id"]
    assert enrollment_of(app, second).current_step == 1
    events = api.get(f"/enrollments/{second['enrollment_id']}/events").get_json()["data"]
    assert [e["type"] for e in events] == ["task_skipped"]


def test_a_finished_task_cannot_be_finished_again(api, client, owner, login, campaign):
    task = tasks(api)[0]
    login(owner)
    assert post(client, f"/tasks/{task['id']}/done").status_code == 303

    again = post(client, f"/tasks/{task['id']}/skip")

    assert again.status_code == 409
    assert "already done" in again.get_data(as_text=True)


def test_filters_narrow_the_list_and_travel_with_the_actions(api, client, owner, login, campaign):
    other = factories.instance(api, name="Other campaign")
    login(owner)

    def count(query: str) -> str:
        html = client.get(f"/tasks?{query}").get_data(as_text=True)
        return re.search(r"(\d+) open tasks?", html).group(1)

    assert count("due=overdue") == "3"
    assert count("due=today") == "3"
    assert count("due=upcoming") == "0"
    assert count("type=connection_request") == "3"
    assert count("type=profile_visit") == "0"
    assert count(f"campaign={campaign['id']}") == "3"
    assert count(f"campaign={other['id']}") == "0"
    assert count("due=nonsense&type=nonsense&campaign=nonsense&page=-4") == "3"
    html = client.get(f"/tasks?due=today&campaign={campaign['id']}").get_data(as_text=True)
    assert re.search(rf'action="/tasks/[0-9a-f-]+/done\?due=today&amp;campaign={campaign["id"]}"', html)
    assert f'<option value="{campaign["id"]}" selected>Spring outreach</option>' in html
    assert '<option value="today" selected>Due today or overdue</option>' in html


def test_the_list_is_a_fragment_for_htmx_and_a_page_otherwise(client, owner, login, campaign):
    login(owner)

    fragment = client.get("/tasks?due=today", headers={"HX-Request": "true"})
    restore = client.get("/tasks?due=today", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    page = client.get("/tasks?due=today")

    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="task-list"')
    assert 'aria-label="Filter tasks"' not in fragment.get_data(as_text=True)
    for response in (restore, page):
        html = response.get_data(as_text=True)
        assert html.startswith("<!doctype html>") and 'aria-label="Filter tasks"' in html
    assert 'hx-get="/tasks" hx-target="#task-list" hx-swap="outerHTML" hx-push-url="true"' in page.get_data(
        as_text=True
    )
    assert "HX-Request" in fragment.headers["Vary"]


def test_pages_beyond_the_last_show_the_last(app, api, client, owner, login, campaign):
    login(owner)

    html = client.get("/tasks?page=9").get_data(as_text=True)

    assert "Person0 Lee" in html


def test_an_outsider_gets_404_for_the_owners_tasks(app, api, client, outsider, login, campaign):
    task = tasks(api)[0]
    login(outsider)

    assert "0 open tasks" in client.get("/tasks").get_data(as_text=True)
    for action in ("done", "skip"):
        assert post(client, f"/tasks/{task['id']}/{action}").status_code == 404
        assert post(client, f"/tasks/{task['id']}/{action}", headers={"HX-Request": "true"}).status_code == 404
        assert client.get(f"/tasks/{task['id']}/{action}").status_code == 405
    assert post(client, f"/tasks/{uuid.uuid4()}/done").status_code == 404
    with app.app_context():
        assert db.session.get(Task, uuid.UUID(task["id"])).status == "open"


def test_actions_need_a_csrf_token(app, api, client, owner, login, campaign):
    task = tasks(api)[0]
    login(owner)

    response = client.post(f"/tasks/{task['id']}/done")

    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(Task, uuid.UUID(task["id"])).status == "open"


def test_actions_need_a_login(app, api, client, campaign):
    task = tasks(api)[0]

    response = client.post(f"/tasks/{task['id']}/done", data={"csrf_token": csrf_token(client)})

    assert response.status_code == 303 and response.headers["Location"] == "/login"
    with app.app_context():
        assert db.session.get(Task, uuid.UUID(task["id"])).status == "open"


def test_without_tasks_it_says_what_will_appear_here(client, owner, login):
    login(owner)

    html = client.get("/tasks").get_data(as_text=True)

    assert "No tasks waiting" in html
