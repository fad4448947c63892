from tests import factories


def _post(api, events):
    response = api.post("/events/webhook", json={"events": events})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_rates_are_per_contact_and_a_steps_rates_are_of_those_who_received_it(api):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 4)
    template = api.get(f"/templates/{instance['template_id']}").get_json()["data"]
    step1, step2 = (s["id"] for s in template["steps"])
    e = [x["id"] for x in api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]]

    def ev(n, enrollment, type_, step, day="2026-11-20"):
        return {
            "provider_event_id": f"p{n}",
            "type": type_,
            "enrollment_id": enrollment,
            "step_id": step,
            "occurred_at": f"{day}T10:00:00Z",
        }

    _post(
        api,
        [
            ev(1, e[0], "sent", step1),
            ev(2, e[1], "sent", step1),
            ev(3, e[2], "sent", step1),
            ev(4, e[3], "sent", step1),
            ev(5, e[0], "delivered", step1),
            ev(6, e[1], "delivered", step1),
            ev(7, e[0], "opened", step1),
            ev(8, e[0], "opened", step1),
            ev(9, e[1], "opened", step1, "2026-11-21"),
            ev(10, e[0], "clicked", step1),
            ev(11, e[0], "sent", step2, "2026-11-22"),
            ev(12, e[0], "opened", step2, "2026-11-22"),
            ev(13, e[1], "replied", step1, "2026-11-21"),
            ev(14, e[3], "bounced", step1),
        ],
    )
    data = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]
    totals = data["totals"]
    assert totals == {
        "enrolled": 4,
        "active": 2,
        "completed": 0,
        "sent": 5,
        "delivered": 2,
        "opened": 2,
        "clicked": 1,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 0,
    }
    assert data["statuses"]["replied"] == 1 and data["statuses"]["bounced"] == 1
    # 4 contacts got 5 messages: per message the open rate would be 2 / 5, per contact it is 2 / 4.
    assert data["contacts"] == {
        "contacted": 4,
        "emailed": 4,
        "opened": 2,
        "clicked": 1,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 0,
    }
    assert data["rates"] == {
        "open_rate": 0.5,
        "click_rate": 0.25,
        "reply_rate": 0.25,
        "bounce_rate": 0.25,
        "unsubscribe_rate": 0.0,
    }
    first, second = data["steps"]
    assert first["totals"] == {
        "sent": 4,
        "delivered": 2,
        "opened": 2,
        "clicked": 1,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 0,
    }
    assert first["contacts"] == {
        "received": 4,
        "opened": 2,
        "clicked": 1,
        "replied": 1,
        "bounced": 1,
        "unsubscribed": 0,
    }
    assert first["rates"] == {
        "open_rate": 0.5,
        "click_rate": 0.25,
        "reply_rate": 0.25,
        "bounce_rate": 0.25,
        "unsubscribe_rate": 0.0,
    }
    # Step 2 went to one contact, who opened it: 100% of those who received step 2.
    assert (second["totals"]["sent"], second["totals"]["opened"]) == (1, 1)
    assert (second["contacts"]["received"], second["rates"]["open_rate"]) == (1, 1.0)
    assert data["daily"] == [
        {"date": "2026-11-20", "sent": 4, "opened": 1, "clicked": 1, "replied": 0, "bounced": 1},
        {"date": "2026-11-21", "sent": 0, "opened": 1, "clicked": 0, "replied": 1, "bounced": 0},
        {"date": "2026-11-22", "sent": 1, "opened": 0, "clicked": 0, "replied": 0, "bounced": 0},
    ]


def test_redelivered_events_do_not_change_the_numbers(api):
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], 1)
    enrollment = api.get(f"/instances/{instance['id']}/enrollments").get_json()["data"][0]
    batch = [
        {"provider_event_id": "a", "type": "sent", "enrollment_id": enrollment["id"]},
        {"provider_event_id": "b", "type": "opened", "enrollment_id": enrollment["id"]},
    ]
    _post(api, batch)
    before = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]
    _post(api, batch)
    after = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]["totals"]
    assert before == after and after["sent"] == 1 and after["opened"] == 1


def test_an_empty_campaign_has_zero_rates(api):
    instance = factories.instance(api)
    data = api.get(f"/instances/{instance['id']}/performance").get_json()["data"]
    assert data["totals"]["enrolled"] == 0
    assert set(data["rates"].values()) == {0.0}
    assert data["daily"] == []
    assert len(data["steps"]) == 2
