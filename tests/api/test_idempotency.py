def test_the_same_key_and_body_replays_the_first_response(api):
    headers = {"Idempotency-Key": "create-template-1"}
    first = api.post("/templates", json={"name": "Once"}, headers=headers)
    second = api.post("/templates", json={"name": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert api.get("/templates").get_json()["pagination"]["total"] == 1


def test_the_same_key_with_another_body_is_422(api):
    headers = {"Idempotency-Key": "k"}
    api.post("/templates", json={"name": "One"}, headers=headers)
    response = api.post("/templates", json={"name": "Two"}, headers=headers)
    assert response.status_code == 422
    assert api.get("/templates").get_json()["pagination"]["total"] == 1


def test_keys_are_per_workspace(api, outsider):
    headers = {"Idempotency-Key": "shared"}
    mine = api.post("/templates", json={"name": "Mine"}, headers=headers).get_json()
    theirs = api.as_(outsider).post("/templates", json={"name": "Mine"}, headers=headers).get_json()
    assert mine["data"]["id"] != theirs["data"]["id"]


def test_errors_are_replayed_too_and_keys_expire_after_a_day(app, api):
    import datetime as dt

    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import IdempotencyKey

    headers = {"Idempotency-Key": "bad"}
    first = api.post(
        "/instances", json={"template_id": "00000000-0000-4000-8000-000000000000", "name": "x"}, headers=headers
    )
    assert first.status_code == 404
    assert (
        api.post(
            "/instances", json={"template_id": "00000000-0000-4000-8000-000000000000", "name": "x"}, headers=headers
        ).get_json()
        == first.get_json()
    )
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25))
        )
        db.session.commit()
    assert api.post("/templates", json={"name": "Fresh"}, headers=headers).status_code == 201
