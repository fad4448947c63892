"""Commands: `flask users create|set-password`, `flask api-keys create`, `flask bootstrap`."""

import hashlib

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import ApiKey, User, Workspace

PASSWORD = "correct horse battery"


@pytest.fixture
def flask(app):
    """Run a command the way `flask` does: in an application context of its own."""
    runner = app.test_cli_runner()

    def invoke(*args: str):
        with app.app_context():
            return runner.invoke(args=list(args))

    return invoke


def user_by_email(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is not None:
            db.session.expunge(user)
        return user


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_users_create_makes_the_owner_of_a_new_workspace(app, flask):
    result = flask("users", "create", "--email", "Ada@Initech.test", "--password", PASSWORD, "--workspace", "Initech")

    assert result.exit_code == 0, result.output
    assert "Created owner ada@initech.test in workspace 'Initech'." in result.output
    user = user_by_email(app, "ada@initech.test")
    assert user.role == "owner"
    with app.app_context():
        assert db.session.get(Workspace, user.workspace_id).name == "Initech"


def test_users_create_adds_a_member_to_an_existing_workspace(app, flask):
    flask("users", "create", "--email", "ada@initech.test", "--password", PASSWORD, "--workspace", "Initech")

    result = flask("users", "create", "--email", "bob@initech.test", "--password", PASSWORD, "--workspace", "Initech")

    assert result.exit_code == 0, result.output
    assert "Created member bob@initech.test" in result.output
    ada, bob = user_by_email(app, "ada@initech.test"), user_by_email(app, "bob@initech.test")
    assert bob.role == "member"
    assert bob.workspace_id == ada.workspace_id
    assert count(app, Workspace) == 1


def test_users_create_rejects_a_short_password(app, flask):
    result = flask("users", "create", "--email", "ada@initech.test", "--password", "Sh0rt!", "--workspace", "Initech")

    assert result.exit_code != 0
    assert "Password must be 8 to 128 characters long." in result.output
    assert "Sh0rt!" not in result.output
    assert user_by_email(app, "ada@initech.test") is None
    assert count(app, Workspace) == 0


def test_users_create_rejects_an_email_already_taken(app, flask, owner):
    result = flask("users", "create", "--email", owner.email.upper(), "--password", PASSWORD, "--workspace", "Other")

    assert result.exit_code != 0
    assert f"A user with email {owner.email} already exists." in result.output
    assert count(app, User) == 1


def test_users_create_rejects_an_invalid_email(app, flask):
    result = flask("users", "create", "--email", "not-an-email", "--password", PASSWORD, "--workspace", "Initech")

    assert result.exit_code != 0
    assert "not a valid email address" in result.output
    assert count(app, User) == 0


def test_api_keys_create_prints_a_working_key_on_its_last_line(app, flask, client, owner):
    result = flask("api-keys", "create", "--user", owner.email, "--name", "CRM sync")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    key = lines[-1]
    assert key.startswith("dbk_")
    assert key not in "\n".join(lines[:-1])
    response = client.get("/api/campaigns/v2/templates", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["success"] is True


def test_api_keys_are_stored_only_as_a_hash(app, flask, owner):
    key = flask("api-keys", "create", "--user", owner.email, "--name", "CRM sync").output.strip().splitlines()[-1]
    secret = key.rsplit("_", 1)[1]

    with app.app_context():
        stored = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == "CRM sync"))
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert stored.prefix == key.split("_")[1]
        rows = db.session.execute(sa.select(ApiKey.__table__)).all()
    everything = " ".join(str(value) for row in rows for value in row)
    assert secret not in everything
    assert key not in everything


def test_api_keys_create_needs_an_existing_user(app, flask):
    result = flask("api-keys", "create", "--user", "nobody@initech.test", "--name", "CRM sync")

    assert result.exit_code != 0
    assert "No user with email nobody@initech.test." in result.output
    assert count(app, ApiKey) == 0


def test_bootstrap_sets_up_a_demo_workspace_once(app, flask, client):
    first = flask("bootstrap")

    assert first.exit_code == 0, first.output
    assert "email:    owner@example.com" in first.output
    assert "password: " in first.output
    key = first.output.strip().splitlines()[-1]
    response = client.get("/api/campaigns/v2/templates", headers={"X-API-Key": key})
    assert response.status_code == 200
    password = next(line for line in first.output.splitlines() if "password:" in line).split()[-1]
    with app.app_context():
        from webapp.services.users import authenticate_user

        assert authenticate_user("owner@example.com", password) is not None

    second = flask("bootstrap")

    assert second.exit_code == 0
    assert "is set up" in second.output
    assert "dbk_" not in second.output
    assert (count(app, User), count(app, Workspace), count(app, ApiKey)) == (1, 1, 1)


def test_set_password_changes_it_and_ends_sessions(app, flask, owner):
    from webapp.services.users import authenticate_user

    before = user_by_email(app, owner.email).session_version

    result = flask("users", "set-password", "--email", owner.email, "--password", "a brand new passphrase")

    assert result.exit_code == 0, result.output
    assert f"Password changed for {owner.email}." in result.output
    assert user_by_email(app, owner.email).session_version == before + 1
    with app.app_context():
        assert authenticate_user(owner.email, "a brand new passphrase") is not None
        assert authenticate_user(owner.email, owner.password) is None


def test_set_password_refuses_a_short_password_and_an_unknown_user(app, flask, owner):
    before = user_by_email(app, owner.email).session_version

    short = flask("users", "set-password", "--email", owner.email, "--password", "short")
    unknown = flask("users", "set-password", "--email", "nobody@acme.test", "--password", "long enough password")

    assert short.exit_code != 0
    assert "Password must be 8 to 128 characters long." in short.output
    assert unknown.exit_code != 0
    assert "No user with email nobody@acme.test." in unknown.output
    assert user_by_email(app, owner.email).session_version == before


def test_secrets_rotate_re_encrypts_mailbox_passwords_under_the_new_key(app, flask, api, auth_smtp_server):
    from cryptography.fernet import Fernet

    old = app.config["ENCRYPTION_KEY"]
    body = {
        "name": "Ada",
        "from_email": "ada@acme.test",
        "smtp": {"host": "127.0.0.1", "port": auth_smtp_server.port, "security": "none"},
    }
    body["smtp"] |= {"username": "ada", "password": "ada-secret"}
    mailbox = api.post("/mailboxes", json=body).get_json()["data"]
    new = Fernet.generate_key().decode()

    app.config["ENCRYPTION_KEY"] = f"{new},{old}"  # step 1: the new key first, the old one still reads
    result = flask("secrets", "rotate")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secrets" in result.output

    app.config["ENCRYPTION_KEY"] = new  # step 3: the old key dropped
    check = api.post(f"/mailboxes/{mailbox['id']}/check", json={"servers": ["smtp"]}).get_json()["data"]
    assert check["smtp"] == {"ok": True, "error": None}

    app.config["ENCRYPTION_KEY"] = old  # a key the secret is no longer encrypted with
    check = api.post(f"/mailboxes/{mailbox['id']}/check", json={"servers": ["smtp"]}).get_json()["data"]
    assert check["smtp"]["ok"] is False and "cannot be decrypted" in check["smtp"]["error"]
