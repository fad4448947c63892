"""The enroll page and CSV imports over HTTP: paste, upload -> preview -> mapping -> report,
progress of large files, the invalid-rows download, errors, and who may reach what."""

import csv
import io
import re
import uuid

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import ApiClient, make_config
from tests.web.conftest import count, csrf_token, scalar, sign_in
from webapp.extensions import db
from webapp.models import CampaignEnrollment, Contact, ContactImport, Workspace
from webapp.services import imports as import_service
from webapp.web import imports as import_views

HX = {"HX-Request": "true"}
CSV = (
    "Email,First Name,Last Name,Company,Industry\n"
    "ada@example.com,Ada,Lovelace,Analytical,math\n"
    "grace@example.com,Grace,Hopper,Navy,compilers\n"
    "not-an-email,Bad,Row,X,y\n"
    "ADA@example.com,Ada,Again,Analytical,math\n"
    "blocked@example.com,Blocked,Person,Y,z\n"
)
SUGGESTED = {"column-0": "email", "column-1": "first_name", "column-2": "last_name", "column-3": "company"}


@pytest.fixture
def app_config(database_url_for_test, tmp_path):
    return make_config(database_url_for_test, IMPORT_UPLOAD_FOLDER=str(tmp_path / "uploads"))


@pytest.fixture
def uploads(tmp_path):
    return tmp_path / "uploads"


@pytest.fixture
def campaign(owner_api) -> dict:
    return factories.instance(owner_api, name="Spring launch")


def token(client) -> str:
    return csrf_token(client, "/contacts")


def enroll_url(campaign: dict, rest: str = "") -> str:
    return f"/campaigns/{campaign['id']}/enroll{rest}"


def stat(html: str, label: str) -> int:
    match = re.search(rf"<dt>{re.escape(label)}</dt><dd>(\d+)</dd>", html)
    assert match, f"no {label!r} in the report"
    return int(match.group(1))


def suppress(api: ApiClient, email: str, status: str = "unsubscribed") -> dict:
    contact = api.post("/contacts", json={"email": email}).get_json()["data"]
    assert api.put(f"/contacts/{contact['id']}/suppression", json={"status": status}).status_code == 200
    return contact


def upload(client, url: str, data: bytes, filename: str = "leads.csv", **extra):
    form = {"csrf_token": token(client), "file": (io.BytesIO(data), filename), **extra}
    return client.post(url, data=form, content_type="multipart/form-data")


def map_columns(client, url: str, mapping: dict, *, encoding: str = "utf-8-sig", has_header: str = "1", headers=None):
    form = {"csrf_token": token(client), "encoding": encoding, "has_header": has_header, **mapping}
    return client.post(url, data=form, headers=headers or {})


def pending_files(uploads) -> list:
    return sorted(uploads.glob("*.data")) if uploads.exists() else []


# The page and the paste.


def test_the_enroll_page_offers_paste_and_upload(browser, campaign):
    response = browser.get(enroll_url(campaign))
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert html.startswith("<!doctype html>")
    assert "Spring launch" in html and f'href="/campaigns/{campaign["id"]}"' in html
    assert 'name="addresses"' in html
    assert 'type="file"' in html and 'enctype="multipart/form-data"' in html
    assert "HX-Request" in response.headers["Vary"]


def test_pasting_enrolls_valid_lines_and_reports_the_rest(app, browser, owner_api, campaign):
    suppress(owner_api, "blocked@example.com")
    factories.enroll(owner_api, campaign["id"], 1, domain="existing.test")
    text = (
        "ada@example.com\n"
        "Grace Hopper <grace@example.com>\n"
        "not-an-email\n"
        "\n"
        "blocked@example.com\n"
        "person0@existing.test, bob@example.com\n"
    )

    response = browser.post(
        enroll_url(campaign, "/paste"), data={"csrf_token": token(browser), "addresses": text}, headers=HX
    )
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="paste"')
    assert (stat(html, "Enrolled"), stat(html, "Already enrolled")) == (3, 1)
    assert (stat(html, "Suppressed, skipped"), stat(html, "Invalid"), stat(html, "New contacts")) == (1, 1, 3)
    assert "not-an-email" in html and "row 3: email is not a valid address" in html
    assert "Value error" not in html  # the reason, not pydantic's wording
    assert '"toast"' in response.headers["HX-Trigger"]
    assert count(app, CampaignEnrollment, CampaignEnrollment.instance_id == uuid.UUID(campaign["id"])) == 4
    assert scalar(app, sa.select(Contact.first_name).where(Contact.email == "grace@example.com")) == "Grace"


def test_a_plain_paste_redirects_to_its_report(browser, campaign):
    form = {"csrf_token": token(browser), "addresses": "ada@example.com\nbad"}
    response = browser.post(enroll_url(campaign, "/paste"), data=form)

    assert response.status_code == 303
    assert response.headers["Location"] == enroll_url(campaign, "/pasted")
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert page.startswith("<!doctype html>")
    assert (stat(page, "Enrolled"), stat(page, "Invalid")) == (1, 1)


def test_a_report_that_is_gone_sends_back_to_the_enroll_page(browser, campaign):
    response = browser.get(enroll_url(campaign, "/pasted"))

    assert (response.status_code, response.headers["Location"]) == (303, enroll_url(campaign))


@pytest.mark.parametrize("headers", [{}, HX])
def test_an_empty_paste_is_a_422_and_enrolls_nothing(app, browser, campaign, headers):
    response = browser.post(
        enroll_url(campaign, "/paste"), data={"csrf_token": token(browser), "addresses": " \n "}, headers=headers
    )
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Paste at least one email address." in html
    assert 'aria-invalid="true"' in html
    assert html.startswith("<!doctype html>") != bool(headers)
    assert count(app, CampaignEnrollment) == 0


def test_a_completed_campaign_takes_no_new_contacts(app, browser, owner_api):
    done = factories.instance(owner_api, status="completed")

    page = browser.get(enroll_url(done)).get_data(as_text=True)
    pasted = browser.post(enroll_url(done, "/paste"), data={"csrf_token": token(browser), "addresses": "a@b.co"})
    uploaded = upload(browser, enroll_url(done, "/upload"), CSV.encode())

    assert "completed" in page and 'name="addresses"' not in page
    assert pasted.status_code == 422 and "completed" in pasted.get_data(as_text=True)
    assert uploaded.status_code == 422
    assert count(app, Contact) == 0


# Upload -> preview -> mapping -> report.


def test_a_small_file_goes_from_upload_to_report(app, browser, owner_api, campaign, uploads):
    suppress(owner_api, "blocked@example.com")

    uploaded = upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    assert (uploaded.status_code, uploaded.headers["Location"]) == (303, enroll_url(campaign, "/csv"))
    assert len(pending_files(uploads)) == 1

    preview = browser.get(enroll_url(campaign, "/csv")).get_data(as_text=True)
    assert "grace@example.com" in preview and "5 data rows" in preview
    column_0 = re.search(r'<select[^>]*id="column-0".*?</select>', preview, re.S).group(0)
    assert '<option value="email" selected>' in column_0
    assert 'value="custom:industry" selected' in preview

    # The company column becomes a custom field, the industry is ignored.
    mapping = {**SUGGESTED, "column-3": "custom:company", "column-4": "ignore"}
    created = map_columns(browser, enroll_url(campaign, "/csv"), mapping)
    assert created.status_code == 303
    report_url = created.headers["Location"]
    assert re.fullmatch(rf"{enroll_url(campaign)}/[0-9a-f-]{{36}}", report_url)
    assert pending_files(uploads) == []

    report = browser.get(report_url).get_data(as_text=True)
    assert "Import complete" in report and "<progress" not in report and "hx-trigger" not in report
    assert (stat(report, "Enrolled"), stat(report, "Suppressed, skipped"), stat(report, "Invalid rows")) == (2, 1, 2)
    assert "row 4: email is not a valid address" in report and "row 5 repeats row 2" in report
    assert f'href="{report_url}/invalid-rows.csv"' in report
    ada = scalar(app, sa.select(Contact).where(Contact.email == "ada@example.com"))
    assert (ada.company, ada.custom_fields) == (None, {"company": "Analytical"})
    # The file was used once: going back to the preview asks for it again.
    assert browser.get(enroll_url(campaign, "/csv")).headers["Location"] == enroll_url(campaign)


def test_the_preview_is_a_fragment_for_htmx_and_a_page_on_history_restore(browser, campaign):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())

    fragment = browser.get(enroll_url(campaign, "/csv?encoding=utf-8-sig&has_header=0&has_header=1"), headers=HX)
    restored = browser.get(enroll_url(campaign, "/csv"), headers={**HX, "HX-History-Restore-Request": "true"})
    no_header = browser.get(enroll_url(campaign, "/csv?has_header=0"), headers=HX).get_data(as_text=True)

    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="preview"')
    assert restored.get_data(as_text=True).startswith("<!doctype html>")
    assert "6 data rows" in no_header and "Column 1" in no_header
    assert '<input type="hidden" name="has_header" value="0">' in no_header


def test_a_cp1252_file_read_as_cp1252_shows_marten(app, browser, campaign):
    data = "email;first_name\nmarten@example.com;Mårten\n".encode("cp1252")
    upload(browser, enroll_url(campaign, "/upload"), data, filename="excel.csv")

    as_utf8 = browser.get(enroll_url(campaign, "/csv?encoding=utf-8-sig"), headers=HX).get_data(as_text=True)
    as_cp1252 = browser.get(enroll_url(campaign, "/csv?encoding=cp1252"), headers=HX).get_data(as_text=True)

    assert "not valid utf-8-sig" in as_utf8 and "Mårten" not in as_utf8
    assert "Mårten" in as_cp1252 and 'role="alert"' not in as_cp1252
    assert '<input type="hidden" name="encoding" value="cp1252">' in as_cp1252
    created = map_columns(
        browser, enroll_url(campaign, "/csv"), {"column-0": "email", "column-1": "first_name"}, encoding="cp1252"
    )
    assert created.status_code == 303
    assert scalar(app, sa.select(Contact.first_name).where(Contact.email == "marten@example.com")) == "Mårten"


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (None, None, "Choose a CSV file to upload."),
        (b"", "empty.csv", "The file is empty."),
        (b"  \n\n", "blank.csv", "The file is empty."),
        (CSV.encode(), "leads.xlsx", "leads.xlsx is not a CSV file"),
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-zip", "leads.csv", "looks like an Excel workbook"),
    ],
)
def test_a_bad_upload_is_a_422_with_the_reason_and_keeps_nothing(
    app, browser, campaign, uploads, data, filename, message
):
    url = enroll_url(campaign, "/upload")
    if data is None:
        response = browser.post(url, data={"csrf_token": token(browser)}, content_type="multipart/form-data")
    else:
        response = upload(browser, url, data, filename=filename)
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert message in html
    assert 'aria-invalid="true"' in html
    assert pending_files(uploads) == []
    assert count(app, ContactImport) == 0


def test_uploads_may_exceed_the_app_wide_limit_up_to_their_own(browser, campaign, app):
    assert app.config["MAX_CONTENT_LENGTH"] < 13 * import_views.MB < import_views.UPLOAD_MAX_BYTES
    row = "someone@example.com," + "x" * 100 + "\n"
    data = ("email,notes\n" + row * (13 * import_views.MB // len(row) + 1)).encode()

    response = upload(browser, enroll_url(campaign, "/upload"), data)

    assert response.status_code == 303


def test_a_file_over_the_upload_limit_is_refused_clearly(browser, campaign, uploads, monkeypatch):
    monkeypatch.setattr(import_views, "UPLOAD_MAX_BYTES", 1 * import_views.MB)
    data = b"email\n" + b"someone@example.com\n" * (import_views.MB // 10)

    response = upload(browser, enroll_url(campaign, "/upload"), data)

    assert response.status_code == 413
    assert "The file is larger than 1 MB" in response.get_data(as_text=True)
    assert pending_files(uploads) == []


@pytest.mark.parametrize("headers", [{}, HX])
def test_a_mapping_without_an_email_column_is_a_422_and_imports_nothing(app, browser, campaign, headers):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())

    response = map_columns(
        browser, enroll_url(campaign, "/csv"), {"column-0": "ignore", "column-1": "first_name"}, headers=headers
    )
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Map one column to email." in html
    assert html.lstrip().startswith('<section id="preview"') == bool(headers)
    # The choices made are kept.
    assert re.search(r'id="column-0".*?<option value="ignore" selected>', html, re.S)
    assert count(app, ContactImport) == 0 and count(app, Contact) == 0
    # The file is still there for another try.
    assert map_columns(browser, enroll_url(campaign, "/csv"), SUGGESTED).status_code == 303


def test_a_file_that_does_not_decode_in_the_chosen_encoding_is_a_422(app, browser, campaign):
    upload(browser, enroll_url(campaign, "/upload"), "email\nmårten@example.com\n".encode("cp1252"))

    response = map_columns(browser, enroll_url(campaign, "/csv"), {"column-0": "email"}, encoding="utf-8-sig")

    assert response.status_code == 422
    assert "not valid utf-8-sig" in response.get_data(as_text=True)
    assert count(app, ContactImport) == 0


def test_the_uploaded_file_belongs_to_the_session_that_sent_it(app, browser, campaign, teammate):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    other = app.test_client()
    assert sign_in(other, teammate).status_code == 303

    preview = other.get(enroll_url(campaign, "/csv"))
    created = map_columns(other, enroll_url(campaign, "/csv"), SUGGESTED)

    assert (preview.status_code, preview.headers["Location"]) == (303, enroll_url(campaign))
    assert created.status_code == 303 and created.headers["Location"] == enroll_url(campaign)
    assert count(app, ContactImport) == 0


def test_an_uploaded_file_expires_and_is_cleaned_up(browser, campaign, uploads, monkeypatch):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    monkeypatch.setattr(import_views, "PENDING_TTL_SECONDS", 0)

    response = browser.get(enroll_url(campaign, "/csv"))

    assert (response.status_code, response.headers["Location"]) == (303, enroll_url(campaign))
    assert "no longer here" in browser.get(response.headers["Location"]).get_data(as_text=True)
    assert pending_files(uploads) == []


# The invalid rows report.


def test_the_invalid_rows_download_is_the_uploaded_file_s_rows_with_the_reason(app, browser, campaign):
    rows = ["=1+2,Ann", "+cmd,Bo", "-2,Cy", "@SUM(A1),Di", "ok@example.com,Ed"]
    upload(browser, enroll_url(campaign, "/upload"), ("email,name\n" + "\n".join(rows) + "\n").encode())
    report_url = map_columns(browser, enroll_url(campaign, "/csv"), {"column-0": "email"}).headers["Location"]

    response = browser.get(report_url + "/invalid-rows.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0] == ["email", "name", "import_error"]
    assert [line[:2] for line in table[1:]] == [["'=1+2", "Ann"], ["'+cmd", "Bo"], ["'-2", "Cy"], ["'@SUM(A1)", "Di"]]
    assert [line[2].split(":")[0] for line in table[1:]] == ["row 2", "row 3", "row 4", "row 5"]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\0")) for line in table for cell in line)


# Large files: the worker takes them, the page shows progress.


def test_a_large_import_shows_progress_until_the_worker_has_done_it(app, browser, campaign):
    rows = import_service.INLINE_ROWS + 1
    data = "email\n" + "".join(f"person{i}@example.com\n" for i in range(rows))
    upload(browser, enroll_url(campaign, "/upload"), data.encode())
    report_url = map_columns(browser, enroll_url(campaign, "/csv"), {"column-0": "email"}).headers["Location"]

    page = browser.get(report_url).get_data(as_text=True)
    polling = browser.get(report_url, headers=HX).get_data(as_text=True)
    assert '<progress id="import-progress"' in page and 'value="0"' in page
    assert '<meta http-equiv="refresh"' in page
    assert polling.lstrip().startswith('<section id="import-status"')
    assert 'hx-trigger="every 2s"' in polling and f'hx-get="{report_url}"' in polling
    assert f"0 of {rows} rows processed" in polling

    with app.app_context():
        import_id = import_service.claim_next_import()
        assert str(import_id) in report_url
        import_service.process_import(import_id)

    done = browser.get(report_url, headers=HX).get_data(as_text=True)
    assert "hx-trigger" not in done and "<progress" not in done
    assert "Import complete" in done and stat(done, "Enrolled") == rows
    assert count(app, CampaignEnrollment) == rows


# Contacts and suppression imports use the same steps.


def test_a_suppression_file_puts_its_addresses_on_the_suppression_list(app, browser):
    uploaded = upload(browser, "/contacts/suppressed/import/upload", b"address\nno-more@example.com\nbad\n")
    assert uploaded.headers["Location"] == "/contacts/suppressed/import/csv"
    preview = browser.get("/contacts/suppressed/import/csv").get_data(as_text=True)
    assert "Add 2 addresses to the suppression list" in preview

    created = map_columns(browser, "/contacts/suppressed/import/csv", {"column-0": "email"})
    report = browser.get(created.headers["Location"]).get_data(as_text=True)

    assert (stat(report, "On the suppression list"), stat(report, "Invalid rows")) == (1, 1)
    assert scalar(app, sa.select(Contact.status).where(Contact.email == "no-more@example.com")) == "unsubscribed"


def test_a_contacts_file_adds_contacts_without_enrolling_them(app, browser):
    page = browser.get("/contacts/import").get_data(as_text=True)
    assert 'action="/contacts/import/upload"' in page and 'name="addresses"' not in page

    upload(browser, "/contacts/import/upload", CSV.encode())
    created = map_columns(browser, "/contacts/import/csv", SUGGESTED)
    report = browser.get(created.headers["Location"]).get_data(as_text=True)

    assert (stat(report, "New contacts"), stat(report, "Invalid rows")) == (3, 2)
    assert count(app, CampaignEnrollment) == 0


# Who may reach what.


def _owner_imports(app, owner, campaign) -> dict[str, uuid.UUID]:
    with app.app_context():
        workspace = db.session.get(Workspace, owner.workspace_id)
        mapping = {"0": "email"}
        data = b"email\nada@example.com\nbad\n"
        made = {
            kind: import_service.create_import(
                workspace,
                data=data,
                filename="x.csv",
                encoding="utf-8-sig",
                mapping=mapping,
                instance_id=uuid.UUID(campaign["id"]) if kind == "enroll" else None,
                kind=kind,
            ).id
            for kind in ("enroll", "contacts", "suppression")
        }
    return made


def _id_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("imports.") and {"instance_id", "import_id"} & rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_an_outsider_gets_404_for_the_owners_campaign_and_imports_on_every_route(
    app, client, owner, outsider, login, campaign
):
    imports_by_kind = _owner_imports(app, owner, campaign)
    login(outsider)
    outsider_token = token(client)
    before = (count(app, Contact), count(app, CampaignEnrollment), count(app, ContactImport))
    checked = []

    for rule, method in _id_rules(app):
        kind = rule.defaults["kind"]
        values = {"instance_id": campaign["id"], "import_id": imports_by_kind[kind]}
        path = rule.build({name: values[name] for name in rule.arguments - {"kind"}}, append_unknown=False)[1]
        if method == "GET":
            response = client.get(path)
        else:
            form = {
                "csrf_token": outsider_token,
                "addresses": "outsider@globex.test",
                "column-0": "email",
                "encoding": "utf-8-sig",
                "file": (io.BytesIO(b"email\noutsider@globex.test\n"), "x.csv"),
            }
            response = client.post(path, data=form, content_type="multipart/form-data")
        checked.append((path, method))
        assert response.status_code == 404, (method, path, response.status_code)
        assert "Spring launch" not in response.get_data(as_text=True)

    assert len(checked) >= 8
    assert (count(app, Contact), count(app, CampaignEnrollment), count(app, ContactImport)) == before


def test_an_import_is_only_found_under_its_own_campaign_and_kind(app, browser, owner, owner_api, campaign):
    imports_by_kind = _owner_imports(app, owner, campaign)
    other = factories.instance(owner_api)

    assert browser.get(enroll_url(campaign, f"/{imports_by_kind['enroll']}")).status_code == 200
    assert browser.get(enroll_url(other, f"/{imports_by_kind['enroll']}")).status_code == 404
    assert browser.get(f"/contacts/import/{imports_by_kind['suppression']}").status_code == 404
    assert browser.get(f"/contacts/suppressed/import/{imports_by_kind['suppression']}").status_code == 200


@pytest.mark.parametrize("path", ["/paste", "/upload", "/csv"])
def test_posts_without_a_csrf_token_are_refused(app, browser, campaign, uploads, path):
    if path == "/csv":
        upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    form = {"addresses": "ada@example.com", "file": (io.BytesIO(CSV.encode()), "leads.csv"), **SUGGESTED}
    form["encoding"] = "utf-8-sig"

    response = browser.post(enroll_url(campaign, path), data=form, content_type="multipart/form-data")

    assert response.status_code == 400
    assert count(app, Contact) == 0 and count(app, ContactImport) == 0
    assert len(pending_files(uploads)) == (1 if path == "/csv" else 0)


def test_a_csrf_token_from_another_session_is_refused(app, client, owner, login, campaign):
    foreign = csrf_token(app.test_client(), "/login")
    login(owner)

    response = upload_with_token(client, enroll_url(campaign, "/upload"), foreign)

    assert response.status_code == 400


def upload_with_token(client, url, token):
    form = {"csrf_token": token, "file": (io.BytesIO(CSV.encode()), "leads.csv")}
    return client.post(url, data=form, content_type="multipart/form-data")


@pytest.mark.parametrize("rest", ["", "/csv", "/pasted"])
def test_signing_in_is_required_to_see_the_pages(client, campaign, rest):
    response = client.get(enroll_url(campaign, rest))

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


def test_signing_in_is_required_to_upload(app, client, campaign, uploads):
    response = upload_with_token(client, enroll_url(campaign, "/upload"), csrf_token(client, "/login"))

    assert (response.status_code, response.headers["Location"]) == (303, "/login")
    assert pending_files(uploads) == []


def test_every_input_on_the_import_pages_has_a_label(browser, campaign):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    for path in (enroll_url(campaign), enroll_url(campaign, "/csv"), "/contacts/import"):
        html = browser.get(path).get_data(as_text=True)
        for tag in re.findall(r"<(?:input|select|textarea) [^>]*>", html):
            if 'type="hidden"' in tag:
                continue
            field_id = re.search(r'\sid="([^"]+)"', tag).group(1)
            assert f'for="{field_id}"' in html, (path, tag)


# Contacts live in another campaign: skipped unless the box is ticked.

ALSO_ENROLL = "Also enroll contacts who are live in another campaign"


def checkbox(html: str, field_id: str) -> str:
    match = re.search(rf'<input class="checkbox" type="checkbox" id="{field_id}"[^>]*>', html)
    assert match, f"no checkbox {field_id}"
    return match.group(0)


@pytest.fixture
def live_elsewhere(owner_api) -> dict:
    """ada@example.com and grace@example.com, live in the campaign "Q3 outreach"."""
    other = factories.instance(owner_api, name="Q3 outreach", status="active")
    items = [{"contact": {"email": email}} for email in ("ada@example.com", "grace@example.com")]
    response = owner_api.post(f"/instances/{other['id']}/enrollments/bulk", json={"contacts": items})
    assert response.get_json()["data"]["enrolled"] == 2
    return other


def enrolled_here(app, campaign: dict) -> int:
    return count(app, CampaignEnrollment, CampaignEnrollment.instance_id == uuid.UUID(campaign["id"]))


def test_a_paste_skips_contacts_live_in_another_campaign_and_names_it(app, browser, campaign, live_elsewhere):
    page = browser.get(enroll_url(campaign)).get_data(as_text=True)
    box = checkbox(page, "paste-allow-other-campaigns")
    assert 'name="allow_other_campaigns" value="1"' in box and "checked" not in box
    assert f'<label class="field__label" for="paste-allow-other-campaigns">{ALSO_ENROLL}</label>' in page

    form = {"csrf_token": token(browser), "addresses": "ada@example.com\nbob@example.com\nbad"}
    response = browser.post(enroll_url(campaign, "/paste"), data=form, headers=HX)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert (stat(html, "Enrolled"), stat(html, "In another campaign, skipped"), stat(html, "Invalid")) == (1, 1, 1)
    assert "live in campaign &#39;Q3 outreach&#39;" in html
    rows = re.findall(r'<tr><td class="numeric">(\d+)</td><td class="break-anywhere">([^<]*)</td>', html)
    assert rows == [("1", "ada@example.com"), ("3", "bad")]  # both kinds, in the order pasted
    assert "skipped as live in another campaign" in response.headers["HX-Trigger"]
    assert enrolled_here(app, campaign) == 1


def test_a_paste_with_the_box_ticked_enrolls_them_too(app, browser, campaign, live_elsewhere):
    form = {
        "csrf_token": token(browser),
        "addresses": "ada@example.com\ngrace@example.com",
        "allow_other_campaigns": "1",
    }
    response = browser.post(enroll_url(campaign, "/paste"), data=form)
    report = browser.get(response.headers["Location"]).get_data(as_text=True)

    assert (stat(report, "Enrolled"), stat(report, "In another campaign, skipped")) == (2, 0)
    assert enrolled_here(app, campaign) == 2
    assert count(app, CampaignEnrollment) == 4  # still live in Q3 outreach as well


def test_a_refused_paste_keeps_the_box_as_it_was(browser, campaign):
    form = {"csrf_token": token(browser), "addresses": " ", "allow_other_campaigns": "1"}
    html = browser.post(enroll_url(campaign, "/paste"), data=form, headers=HX).get_data(as_text=True)

    assert "checked" in checkbox(html, "paste-allow-other-campaigns")


@pytest.mark.parametrize("ticked", [False, True])
def test_a_csv_import_skips_contacts_live_in_another_campaign_unless_ticked(
    app, browser, campaign, live_elsewhere, ticked
):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    preview = browser.get(enroll_url(campaign, "/csv")).get_data(as_text=True)
    assert "checked" not in checkbox(preview, "import-allow-other-campaigns")
    assert ALSO_ENROLL in preview

    extra = {"allow_other_campaigns": "1"} if ticked else {}
    created = map_columns(browser, enroll_url(campaign, "/csv"), {**SUGGESTED, **extra})
    report = browser.get(created.headers["Location"]).get_data(as_text=True)

    # ada (twice: the second is a duplicate row), grace, blocked and a bad row.
    if ticked:
        assert stat(report, "Enrolled") == 3
        assert "<dt>In another campaign</dt><dd>Enrolled as well</dd>" in report
    else:
        assert (stat(report, "Enrolled"), stat(report, "In another campaign, skipped")) == (1, 2)
    assert stat(report, "Invalid rows") == 2
    with app.app_context():
        record = db.session.scalar(sa.select(ContactImport))
        assert (record.allow_other_campaigns, record.in_other_campaign) == (ticked, 0 if ticked else 2)
        counted = record.enrolled + record.already_enrolled + record.suppressed + record.in_other_campaign
        assert counted + record.invalid_count == record.processed_rows == 5
    assert enrolled_here(app, campaign) == (3 if ticked else 1)


def test_a_refused_mapping_keeps_the_box_as_it_was(browser, campaign):
    upload(browser, enroll_url(campaign, "/upload"), CSV.encode())
    response = map_columns(
        browser, enroll_url(campaign, "/csv"), {"column-0": "ignore", "allow_other_campaigns": "1"}, headers=HX
    )

    assert response.status_code == 422
    assert "checked" in checkbox(response.get_data(as_text=True), "import-allow-other-campaigns")


def test_contacts_and_suppression_imports_have_no_such_box(browser):
    upload(browser, "/contacts/import/upload", CSV.encode())
    assert ALSO_ENROLL not in browser.get("/contacts/import/csv").get_data(as_text=True)
