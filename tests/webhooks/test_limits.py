"""The webhook routes have their own limit, per client address, apart from the API's."""

import uuid

import pytest

from tests.conftest import make_config


@pytest.fixture
def app_config(database_url_for_test):
    return make_config(
        database_url_for_test,
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_API="2 per minute",
        RATELIMIT_WEBHOOK="3 per minute",
    )


def test_webhooks_are_limited_per_client_address_with_their_own_budget(client, owner):
    url = f"/webhooks/postmark/{uuid.uuid4()}"
    # An API key in the headers does not give a caller a bucket of its own.
    answers = [client.post(url, data=b"{}", headers=owner.headers).status_code for _ in range(3)]

    limited = client.post(url, data=b"{}")

    assert answers == [401, 401, 401]
    assert limited.status_code == 429
    assert limited.get_json()["statusCode"] == 429
    other_address = client.post(url, data=b"{}", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other_address.status_code == 401
    assert client.get("/api/campaigns/v2/templates", headers=owner.headers).status_code == 200
