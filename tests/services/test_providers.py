"""Provider credentials: validated before they are stored, never half-stored."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.models import Workspace
from webapp.services.providers import get_provider_settings, set_provider_settings


@pytest.fixture
def workspace(ctx, owner) -> Workspace:
    return db.session.get(Workspace, owner.workspace_id)


def der_b64(private_key) -> str:
    return base64.b64encode(
        private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).decode()


def test_it_stores_a_sendgrid_key_given_as_pem_in_the_dashboards_base64_form(workspace):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    set_provider_settings(workspace, "sendgrid", {"public_key": pem})

    db.session.expire_all()
    assert get_provider_settings(db.session.get(Workspace, workspace.id), "sendgrid") == {"public_key": der_b64(key)}


@pytest.mark.parametrize(
    "public_key",
    [
        pytest.param(der_b64(rsa.generate_private_key(public_exponent=65537, key_size=2048)), id="rsa"),
        pytest.param(der_b64(ec.generate_private_key(ec.SECP384R1())), id="p-384"),
        pytest.param("not a key", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
    ],
)
def test_it_refuses_a_sendgrid_key_that_is_not_ecdsa_p256(workspace, public_key):
    with pytest.raises(ValidationFailed) as error:
        set_provider_settings(workspace, "sendgrid", {"public_key": public_key})
    assert error.value.details[0]["field"] == "public_key"
    assert get_provider_settings(workspace, "sendgrid") is None


def test_it_keeps_other_providers_when_one_is_set(workspace):
    set_provider_settings(workspace, "mailgun", {"signing_key": " key-abc123 "})
    set_provider_settings(workspace, "postmark", {"username": "hooks", "password": "x" * 16})

    assert get_provider_settings(workspace, "mailgun") == {"signing_key": "key-abc123"}
    assert get_provider_settings(workspace, "postmark") == {"username": "hooks", "password": "x" * 16}


@pytest.mark.parametrize(
    ("provider", "values", "field"),
    [
        ("postmark", {"username": "hooks", "password": "short"}, "password"),
        ("postmark", {"username": "a:b", "password": "x" * 16}, "username"),
        ("postmark", {"username": "hooks"}, "password"),
        ("mailgun", {"signing_key": "abc", "api_key": "extra"}, "api_key"),
        ("mailgun", {"signing_key": "line\nbreak"}, "signing_key"),
    ],
)
def test_it_refuses_invalid_values(workspace, provider, values, field):
    with pytest.raises(ValidationFailed) as error:
        set_provider_settings(workspace, provider, values)
    assert field in [d["field"] for d in error.value.details]
    assert get_provider_settings(workspace, provider) is None


def test_it_refuses_an_unknown_provider(workspace):
    with pytest.raises(ValidationFailed):
        set_provider_settings(workspace, "ses", {"topic": "x"})
