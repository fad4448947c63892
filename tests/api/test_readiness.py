"""GET /instances/:id/readiness, and the launch it guards (PATCH /instances/:id)."""

from tests import factories

STEP = {
    "subject": "Hi {{ first_name }}",
    "body": "About {{ custom.industry }} at {{ company | default('your team') }}.",
}


def campaign(api, *, steps=(STEP,)) -> dict:
    template = api.post("/templates", json={"name": "Readiness", "type": "email"}).get_json()["data"]
    for step in steps:
        assert api.post(f"/templates/{template['id']}/sequences/email", json=step).status_code == 201
    return factories.instance(api, template_data=template)


def enroll(api, instance_id, *contacts, **options):
    body = {"contacts": [{"contact": contact} for contact in contacts], **options}
    response = api.post(f"/instances/{instance_id}/enrollments/bulk", json=body)
    assert response.status_code == 200, response.get_json()


def ada(n=0, **fields):
    return {"email": f"ada{n}@example.com", "first_name": "Ada", "custom_fields": {"industry": "Looms"}, **fields}


def test_a_complete_campaign_is_ready_and_launches_without_confirming(api):
    instance = campaign(api)
    enroll(api, instance["id"], ada(1), ada(2))

    response = api.get(f"/instances/{instance['id']}/readiness")

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "data": {"ready": True, "blocking": [], "warnings": []}}
    launched = api.patch(f"/instances/{instance['id']}", json={"status": "active"})
    assert launched.status_code == 200 and launched.get_json()["data"]["status"] == "active"


def test_missing_values_are_counted_by_field_with_a_link_to_those_contacts(api):
    instance = campaign(api)
    enroll(api, instance["id"], ada(1), ada(2, first_name=None), ada(3, custom_fields={}), ada(4, first_name=" "))

    data = api.get(f"/instances/{instance['id']}/readiness").get_json()["data"]

    assert data["ready"] is True and data["blocking"] == []
    (problem,) = data["warnings"]
    assert (problem["code"], problem["count"]) == ("missing_variables", 3)
    first_name, industry = problem["details"]["variables"]
    assert (first_name["name"], first_name["count"], first_name["steps"]) == ("first_name", 2, [1])
    assert (industry["name"], industry["count"]) == ("custom.industry", 1)
    listed = api.get(first_name["enrollments_url"]).get_json()
    assert sorted(e["contact"]["email"] for e in listed["data"]) == ["ada2@example.com", "ada4@example.com"]
    assert listed["pagination"]["total"] == 2
    assert [e["contact"]["email"] for e in api.get(industry["enrollments_url"]).get_json()["data"]] == [
        "ada3@example.com"
    ]


def test_the_missing_filter_takes_only_merge_fields(api):
    instance = campaign(api)

    response = api.get(f"/instances/{instance['id']}/enrollments?missing=password_hash")

    assert response.status_code == 400
    assert "merge field" in response.get_json()["message"]


def test_a_launch_with_warnings_is_a_422_until_confirmed(api):
    instance = campaign(api)
    other = campaign(api)
    enroll(api, other["id"], ada(1))
    enroll(api, instance["id"], ada(1), ada(2, first_name=None), allow_other_campaigns=True)

    refused = api.patch(f"/instances/{instance['id']}", json={"status": "active"})

    assert refused.status_code == 422
    body = refused.get_json()
    assert body["success"] is False and body["statusCode"] == 422
    assert "confirm" in body["message"] and "live in another campaign" in body["message"]
    assert [(d["code"], d["severity"], d["count"]) for d in body["details"]] == [
        ("in_other_campaigns", "warning", 1),
        ("missing_variables", "warning", 1),
    ]
    assert api.get(f"/instances/{instance['id']}").get_json()["data"]["status"] == "draft"
    assert api.patch(f"/instances/{instance['id']}", json={"status": "active", "confirm": "yes"}).status_code == 400

    launched = api.patch(f"/instances/{instance['id']}", json={"status": "active", "confirm": True})

    assert launched.status_code == 200 and launched.get_json()["data"]["status"] == "active"


def test_blocking_problems_are_a_409_even_confirmed(api):
    instance = campaign(api, steps=())
    enroll(api, instance["id"], ada(1, first_name=None))

    refused = api.patch(f"/instances/{instance['id']}", json={"status": "active", "confirm": True})

    assert refused.status_code == 409
    body = refused.get_json()
    assert "cannot launch" in body["message"] and "no active steps" in body["message"]
    assert [(d["code"], d["severity"]) for d in body["details"]] == [("no_steps", "blocking")]
    readiness = api.get(f"/instances/{instance['id']}/readiness").get_json()["data"]
    assert readiness["ready"] is False and [p["code"] for p in readiness["blocking"]] == ["no_steps"]


def test_another_workspaces_campaign_is_a_404(api, outsider):
    instance = campaign(api)

    response = api.as_(outsider).get(f"/instances/{instance['id']}/readiness")

    assert response.status_code == 404 and response.get_json()["success"] is False
    assert api.as_(None).get(f"/instances/{instance['id']}/readiness").status_code == 401
