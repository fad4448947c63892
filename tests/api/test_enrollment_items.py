"""Bulk enroll items as scripts send them: plain contact objects, reasons a person can act on
(1-based rows), and internationalised domains."""

import pytest

from tests import factories
from webapp.engine import mailer
from webapp.services.enrollments import MIXED_FORMS, NO_CONTACT


@pytest.fixture
def campaign(api):
    return factories.instance(api, name="IDN test")


def bulk(api, instance_id: str, items: list, **body) -> dict:
    response = api.post(f"/instances/{instance_id}/enrollments/bulk", json={"contacts": items, **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def contact(api, email: str) -> dict:
    found = api.get(f"/contacts?search={email}").get_json()["data"]
    assert len(found) == 1, found
    return found[0]


def test_plain_contact_objects_are_enrolled_beside_the_other_two_forms(api, campaign):
    known = api.post("/contacts", json={"email": "known@example.com"}).get_json()["data"]
    items = [
        {"email": "ada@example.com", "first_name": "Ada", "company": "Analytical", "custom_fields": {"tier": "A"}},
        {"contact": {"email": "grace@example.com"}},
        {"contact_id": known["id"]},
        {"email": "Linus@Example.com"},
    ]
    data = bulk(api, campaign["id"], items)
    assert (data["enrolled"], data["contacts_created"], data["invalid"]) == (4, 3, [])
    ada = contact(api, "ada@example.com")
    assert (ada["first_name"], ada["company"], ada["custom_fields"]) == ("Ada", "Analytical", {"tier": "A"})
    assert contact(api, "linus@example.com")["email"] == "linus@example.com"


def test_a_plain_contact_carries_its_own_allow_other_campaigns(api, campaign):
    other = factories.instance(api, status="active")
    bulk(api, other["id"], [{"email": "busy@example.com"}, {"email": "taken@example.com"}])
    data = bulk(api, campaign["id"], [{"email": "busy@example.com", "allow_other_campaigns": True}])
    assert data["enrolled"] == 1 and data["in_other_campaign"] == 0
    data = bulk(api, campaign["id"], [{"email": "taken@example.com"}])
    assert data["in_other_campaign"] == 1 and data["skipped"][0]["index"] == 0


def test_each_bad_item_gets_a_reason_naming_its_row_and_the_good_ones_go_in(api, campaign):
    known = api.post("/contacts", json={"email": "known@example.com"}).get_json()["data"]
    items = [
        {"email": "ok@example.com"},  # row 1
        {"first_name": "Ada"},  # 2
        {"email": "  "},  # 3
        {"email": "not-an-address"},  # 4
        {"email": "ok@example.com", "first_name": "Again"},  # 5
        {"email": "a@example.com", "contact_id": known["id"]},  # 6
        {"contact": {"email": "b@example.com"}, "contact_id": known["id"]},  # 7
        {},  # 8
        "c@example.com",  # 9
        {"email": "d@example.com", "nickname": "D"},  # 10
        {"email": "e@example.com", "first_name": "x" * 256},  # 11
        {"contact_id": known["id"]},  # 12
        {"contact_id": known["id"]},  # 13
    ]
    data = bulk(api, campaign["id"], items)
    assert data["invalid"] == [
        {"index": 1, "row": 2, "reason": "row 2: email is required"},
        {"index": 2, "row": 3, "reason": "row 3: email is required"},
        {"index": 3, "row": 4, "reason": "row 4: email is not a valid address"},
        {"index": 4, "row": 5, "reason": "row 5 repeats row 1"},
        {"index": 5, "row": 6, "reason": f"row 6: {MIXED_FORMS}"},
        {"index": 6, "row": 7, "reason": f"row 7: {MIXED_FORMS}"},
        {"index": 7, "row": 8, "reason": f"row 8: {NO_CONTACT}"},
        {"index": 8, "row": 9, "reason": f"row 9: {NO_CONTACT}"},
        {"index": 9, "row": 10, "reason": "row 10: nickname is not a field of a contact"},
        {"index": 10, "row": 11, "reason": "row 11: first_name: String should have at most 255 characters"},
        {"index": 12, "row": 13, "reason": "row 13 repeats row 12"},
    ]
    assert (
        MIXED_FORMS
        == 'give the contact once, as one of the contact\'s fields ({"email": ...}), "contact" or "contact_id"'
    )
    assert data["enrolled"] == 2  # rows 1 and 12
    assert api.get("/contacts?search=ok@example.com").get_json()["data"][0]["first_name"] is None


def test_idn_domains_are_accepted_and_both_spellings_are_one_contact(api, campaign):
    items = [
        {"email": "anna@bücher.de", "first_name": "Anna"},
        {"email": "ANNA@XN--BCHER-KVA.DE"},
        {"contact": {"email": "x@例え.jp"}},
        {"email": "ivan@пример.рф"},
    ]
    data = bulk(api, campaign["id"], items)
    assert data["invalid"] == [{"index": 1, "row": 2, "reason": "row 2 repeats row 1"}]
    assert (data["enrolled"], data["contacts_created"]) == (3, 3)
    # Stored in Unicode form, as people read it; sent to the ASCII (punycode) form.
    assert contact(api, "bücher")["email"] == "anna@bücher.de"
    assert contact(api, "例え")["email"] == "x@例え.jp"
    assert mailer.parse_address("anna@bücher.de")[1] == "anna@xn--bcher-kva.de"
    # The other spelling later finds the same contact, in the API and in a bulk request.
    again = bulk(api, campaign["id"], [{"email": "anna@xn--bcher-kva.de", "last_name": "Schmidt"}])
    assert (again["already_enrolled"], again["contacts_created"]) == (1, 0)
    assert contact(api, "bücher")["last_name"] == "Schmidt"
    single = api.post("/contacts", json={"email": "Anna@Xn--Bcher-Kva.De"})
    assert single.status_code == 409, single.get_json()


def test_non_ascii_before_the_at_is_refused_with_a_clear_reason(api, campaign):
    data = bulk(api, campaign["id"], [{"email": "zoë@example.com"}, {"email": "a@xn--zz.de"}])
    assert [item["reason"] for item in data["invalid"]] == [
        "row 1: email has non-ASCII characters before the @, which mail servers cannot be relied on to deliver to "
        "(only the part after the @ may have them)",
        "row 2: email is not a valid address",
    ]
    response = api.post("/contacts", json={"email": "zoë@example.com"})
    assert response.status_code == 400
    assert "non-ASCII characters before the @" in response.get_json()["message"]


def test_the_document_offers_the_plain_contact_form(api):
    spec = api.get("/openapi.json").get_json()
    items = spec["components"]["schemas"]["BulkEnrollmentIn"]["properties"]["contacts"]["items"]
    refs = [alternative.get("$ref") or alternative["allOf"][0]["$ref"] for alternative in items["anyOf"]]
    assert refs == ["#/components/schemas/EnrollmentIn", "#/components/schemas/ContactData"]
    assert "ContactData" in spec["components"]["schemas"]
    invalid = spec["components"]["schemas"]["InvalidItem"]
    assert set(invalid["required"]) == {"index", "row", "reason"}
