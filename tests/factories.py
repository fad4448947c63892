"""Small builders that go through the API or the services, as users do."""

import itertools

_counter = itertools.count(1)


def template(api, *, steps: int = 2, linkedin: bool = False, **fields) -> dict:
    body = {"name": fields.pop("name", f"Sequence {next(_counter)}"), "type": "email", **fields}
    created = api.post("/templates", json=body)
    assert created.status_code == 201, created.get_json()
    template_id = created.get_json()["data"]["id"]
    for number in range(1, steps + 1):
        response = api.post(
            f"/templates/{template_id}/sequences/email",
            json={
                "subject": f"Step {number} for {{{{ first_name }}}}",
                "body": f"Hello {{{{ first_name }}}}, step {number}.",
                "delay_days": 0 if number == 1 else 2,
            },
        )
        assert response.status_code == 201, response.get_json()
    if linkedin:
        response = api.post(
            f"/templates/{template_id}/sequences/linkedin",
            json={"action_type": "connection_request", "message": "Hi!", "delay_days": 1},
        )
        assert response.status_code == 201, response.get_json()
    return api.get(f"/templates/{template_id}").get_json()["data"]


def instance(api, *, template_data: dict | None = None, status: str | None = None, **fields) -> dict:
    template_data = template_data or template(api)
    created = api.post(
        "/instances",
        json={"template_id": template_data["id"], "name": fields.pop("name", f"Campaign {next(_counter)}"), **fields},
    )
    assert created.status_code == 201, created.get_json()
    data = created.get_json()["data"]
    if status in ("active", "paused", "completed"):
        path = {"active": ["active"], "paused": ["active", "paused"], "completed": ["completed"]}[status]
        for step in path:
            response = api.patch(f"/instances/{data['id']}", json={"status": step})
            assert response.status_code == 200, response.get_json()
        data = response.get_json()["data"]
    return data


def contacts(n: int, *, start: int = 0, domain: str = "example.com") -> list[dict]:
    return [
        {"contact": {"email": f"person{i}@{domain}", "first_name": f"Person{i}", "company": "Initech"}}
        for i in range(start, start + n)
    ]


def enroll(api, instance_id: str, n: int = 3, *, allow_other_campaigns: bool = False, **kw) -> dict:
    body = {"contacts": contacts(n, **kw)}
    if allow_other_campaigns:  # contacts live in another campaign are skipped otherwise
        body["allow_other_campaigns"] = True
    response = api.post(f"/instances/{instance_id}/enrollments/bulk", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]
