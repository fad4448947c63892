def test_it_creates_reads_updates_and_deletes_a_contact(api):
    created = api.post(
        "/contacts",
        json={
            "email": "Ada@Example.COM",
            "first_name": "Ada",
            "timezone": "Europe/London",
            "custom_fields": {"industry": "math"},
        },
    )
    assert created.status_code == 201
    contact = created.get_json()["data"]
    assert contact["email"] == "ada@example.com"
    assert contact["status"] == "subscribed"
    updated = api.patch(f"/contacts/{contact['id']}", json={"company": "Analytical Engines"})
    assert updated.get_json()["data"]["company"] == "Analytical Engines"
    assert updated.get_json()["data"]["first_name"] == "Ada"
    assert api.delete(f"/contacts/{contact['id']}").status_code == 200
    assert api.get(f"/contacts/{contact['id']}").status_code == 404


def test_emails_are_unique_per_workspace_whatever_their_case(api, outsider):
    assert api.post("/contacts", json={"email": "bob@example.com"}).status_code == 201
    duplicate = api.post("/contacts", json={"email": "BOB@example.com"})
    assert duplicate.status_code == 409
    assert api.as_(outsider).post("/contacts", json={"email": "bob@example.com"}).status_code == 201


def test_it_rejects_invalid_emails_and_time_zones(api):
    for email in ("not-an-email", "a@b", "a b@example.com", "a@example..com", ""):
        assert api.post("/contacts", json={"email": email}).status_code == 400, email
    response = api.post("/contacts", json={"email": "ok@example.com", "timezone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "time zone" in response.get_json()["message"]


def test_it_lists_contacts_with_search_and_status_filter(api):
    for name in ("alice", "alina", "bruno"):
        api.post("/contacts", json={"email": f"{name}@example.com", "first_name": name.title()})
    contact_id = api.get("/contacts?search=bruno").get_json()["data"][0]["id"]
    api.put(f"/contacts/{contact_id}/suppression", json={"status": "unsubscribed", "reason": "asked"})
    assert api.get("/contacts?search=ali").get_json()["pagination"]["total"] == 2
    unsubscribed = api.get("/contacts?status=unsubscribed").get_json()["data"]
    assert [c["email"] for c in unsubscribed] == ["bruno@example.com"]


def test_suppression_can_be_read_and_set_and_blocks_deletion(api):
    contact = api.post("/contacts", json={"email": "carol@example.com"}).get_json()["data"]
    assert api.get(f"/contacts/{contact['id']}/suppression").get_json()["data"]["suppressed"] is False
    response = api.put(f"/contacts/{contact['id']}/suppression", json={"status": "bounced"})
    assert response.get_json()["data"] == {**response.get_json()["data"], "status": "bounced", "suppressed": True}
    assert api.delete(f"/contacts/{contact['id']}").status_code == 409
    resubscribed = api.put(f"/contacts/{contact['id']}/suppression", json={"status": "subscribed", "reason": "opt-in"})
    assert resubscribed.get_json()["data"]["suppressed"] is False
