import uuid

import pytest
import sqlalchemy as sa

from tests import factories
from webapp.errors import ValidationFailed
from webapp.models import CampaignEnrollment, Contact, ContactImport
from webapp.services import imports

CSV = (
    "Email,First Name,Last Name,Company,Industry\n"
    "ada@example.com,Ada,Lovelace,Analytical,math\n"
    "grace@example.com,Grace,Hopper,Navy,compilers\n"
    "not-an-email,Bad,Row,X,y\n"
    "ADA@example.com,Ada,Again,Analytical,math\n"
    "blocked@example.com,Blocked,Person,Y,z\n"
)


def test_preview_suggests_a_mapping_and_shows_the_first_rows():
    preview = imports.preview_csv(CSV.encode("utf-8-sig"))
    assert preview.encoding == "utf-8-sig" and preview.encoding_ok
    assert preview.headers[:2] == ["Email", "First Name"]
    assert preview.total_rows == 5
    assert preview.rows[0][0] == "ada@example.com"
    assert preview.mapping == {
        "0": "email",
        "1": "first_name",
        "2": "last_name",
        "3": "company",
        "4": "custom:industry",
    }


def test_a_windows_excel_file_is_read_as_cp1252_when_chosen():
    data = "email;first_name\nmarten@example.com;Mårten\n".encode("cp1252")
    guess = imports.preview_csv(data)
    assert guess.encoding == "cp1252" and guess.delimiter == ";"
    assert guess.rows[0][1] == "Mårten"
    wrong = imports.preview_csv(data, encoding="utf-8-sig")
    assert not wrong.encoding_ok and "cp1252" in wrong.error


def test_a_small_import_enrolls_at_once_and_reports_rows(db, api, owner):
    instance = factories.instance(api)
    blocked = api.post("/contacts", json={"email": "blocked@example.com"}).get_json()["data"]
    api.put(f"/contacts/{blocked['id']}/suppression", json={"status": "unsubscribed"})
    mapping = imports.preview_csv(CSV.encode()).mapping
    record = imports.create_import(
        owner.workspace,
        data=CSV.encode(),
        filename="leads.csv",
        encoding="utf-8-sig",
        mapping=mapping,
        instance_id=uuid.UUID(instance["id"]),
    )
    assert record.status == "done" and record.progress == 100
    assert (record.enrolled, record.suppressed, record.invalid_count) == (2, 1, 2)
    assert [r["row"] for r in record.invalid_rows] == [4, 5]
    assert record.invalid_rows == [
        {"row": 4, "reason": "row 4: email is not a valid address"},
        {"row": 5, "reason": "row 5 repeats row 2"},
    ]
    ada = db.session.scalar(sa.select(Contact).where(Contact.email == "ada@example.com"))
    assert ada.custom_fields == {"industry": "math"}


def test_a_large_import_waits_for_the_worker_and_resumes_in_chunks(db, api, owner):
    instance = factories.instance(api)
    rows = "\n".join(f"person{i}@example.com,P{i}" for i in range(imports.INLINE_ROWS + 10))
    data = ("email,first_name\n" + rows + "\n").encode()
    record = imports.create_import(
        owner.workspace,
        data=data,
        filename="big.csv",
        encoding="utf-8-sig",
        mapping={"0": "email", "1": "first_name"},
        instance_id=uuid.UUID(instance["id"]),
    )
    assert record.status == "pending" and record.total_rows == imports.INLINE_ROWS + 10
    claimed = imports.claim_next_import()
    assert claimed == record.id
    assert imports.claim_next_import() is None
    done = imports.process_import(claimed)
    assert done.status == "done" and done.enrolled == imports.INLINE_ROWS + 10
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CampaignEnrollment)) == imports.INLINE_ROWS + 10


def test_an_import_needs_an_email_column_and_a_decodable_file(db, api, owner):
    with pytest.raises(ValidationFailed, match="email"):
        imports.create_import(
            owner.workspace, data=CSV.encode(), filename="x.csv", encoding="utf-8-sig", mapping={"1": "first_name"}
        )
    with pytest.raises(ValidationFailed, match="not valid utf-8"):
        imports.create_import(
            owner.workspace,
            data="email\nmårten@x.com\n".encode("cp1252"),
            filename="x.csv",
            encoding="utf-8-sig",
            mapping={"0": "email"},
        )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ContactImport)) == 0


def test_a_suppression_list_import_suppresses_new_and_known_contacts(db, api, owner):
    api.post("/contacts", json={"email": "known@example.com"})
    data = b"email\nknown@example.com\nnew@example.com\n"
    record = imports.create_import(
        owner.workspace, data=data, filename="dnc.csv", encoding="utf-8-sig", mapping={"0": "email"}, kind="suppression"
    )
    assert record.suppressed == 2
    statuses = set(db.session.scalars(sa.select(Contact.status)))
    assert statuses == {"unsubscribed"}


def test_pasted_lines_accept_plain_and_named_addresses():
    items = imports.parse_pasted('ada@example.com\n"Grace Hopper" <grace@navy.mil>\n\nx@a.io, y@b.io\nnot an address')
    assert items == [
        {"contact": {"email": "ada@example.com"}},
        {"contact": {"email": "grace@navy.mil", "first_name": "Grace", "last_name": "Hopper"}},
        {"contact": {"email": "x@a.io"}},
        {"contact": {"email": "y@b.io"}},
        {"contact": {"email": "not an address"}},  # one invalid entry, not three
    ]


def test_the_invalid_rows_file_keeps_the_uploaded_columns_and_adds_the_reason(db, owner):
    data = (
        "Region;Email;Name;Notes\n"
        "EU;ada@example.com;Ada;fine\n"
        "US;not-an-email;=SUM(A1:A9);-2+3\n"
        "EU;ada@example.com;Ada again;\n"
    ).encode("cp1252")
    record = imports.create_import(
        owner.workspace, data=data, filename="leads.csv", encoding="cp1252", mapping={"1": "email", "2": "first_name"}
    )

    lines = imports.invalid_rows_csv(record).splitlines()

    assert lines == [
        "Region;Email;Name;Notes;import_error",
        "US;not-an-email;'=SUM(A1:A9);'-2+3;row 3: email is not a valid address",
        "EU;ada@example.com;Ada again;;row 4 repeats row 2",
    ]


def test_the_fixed_invalid_rows_file_imports_as_it_was_written(db, owner):
    data = b"email,first_name,team\nnot-an-email,-Bob,=ops\n"
    mapping = imports.preview_csv(data).mapping
    record = imports.create_import(owner.workspace, data=data, filename="a.csv", encoding="utf-8-sig", mapping=mapping)
    fixed = imports.invalid_rows_csv(record).replace("not-an-email", "bob@example.com").encode()

    again = imports.preview_csv(fixed)
    assert again.mapping == {"0": "email", "1": "first_name", "2": "custom:team", "3": "ignore"}
    imports.create_import(owner.workspace, data=fixed, filename="b.csv", encoding="utf-8-sig", mapping=again.mapping)

    contact = db.session.scalar(sa.select(Contact).where(Contact.email == "bob@example.com"))
    assert (contact.first_name, contact.custom_fields) == ("-Bob", {"team": "=ops"})


def test_a_file_without_a_header_gets_its_invalid_rows_without_one(db, owner):
    data = b"ada@example.com,Ada\nnope,Short\nnope2\n"
    record = imports.create_import(
        owner.workspace, data=data, filename="a.csv", encoding="utf-8-sig", mapping={"0": "email"}, has_header=False
    )

    rows = imports.invalid_rows_csv(record).splitlines()

    assert [row.rsplit(",", 1)[0] for row in rows] == ["nope,Short", "nope2,"]
    assert rows[0].endswith("row 2: email is not a valid address")


def test_the_worker_processes_pending_imports(app, api, owner):
    from webapp.worker import Worker

    instance = factories.instance(api)
    rows = "\n".join(f"w{i}@example.com" for i in range(imports.INLINE_ROWS + 1))
    with app.app_context():
        record = imports.create_import(
            owner.workspace,
            data=("email\n" + rows).encode(),
            filename="w.csv",
            encoding="utf-8-sig",
            mapping={"0": "email"},
            instance_id=uuid.UUID(instance["id"]),
        )
        assert record.status == "pending"
        import_id = record.id
    assert Worker(app).run_once().imports == 1
    with app.app_context():
        from webapp.extensions import db as _db

        assert _db.session.get(ContactImport, import_id).status == "done"
