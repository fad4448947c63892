"""Rate limits: per API key (else per client address), 429 with the error envelope and headers."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ApiClient, make_config
from webapp.extensions import limiter

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_API": "4 per minute",
    "RATELIMIT_PERFORMANCE": "2 per minute",
    "RATELIMIT_WEBHOOK": "3 per minute",
}
SOME_INSTANCE = f"/instances/{uuid.uuid4()}/performance"


@pytest.fixture
def limits() -> dict:
    return {}


@pytest.fixture
def app_config(database_url_for_test, limits):
    return make_config(database_url_for_test, **{**LIMITS, **limits})


def exhaust(api, path: str, times: int) -> None:
    for _ in range(times):
        assert api.get(path).status_code != 429


def test_it_counts_down_then_answers_429_with_the_envelope_and_headers(api):
    remaining = [api.get("/templates").headers["X-RateLimit-Remaining"] for _ in range(4)]
    assert remaining == ["3", "2", "1", "0"]

    response = api.get("/templates")

    assert response.status_code == 429
    body = response.get_json()
    assert body["success"] is False
    assert body["statusCode"] == 429
    assert body["error"] == "Too Many Requests"
    assert "4 per 1 minute" in body["message"]
    assert response.headers["X-RateLimit-Limit"] == "4"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(response.headers["X-RateLimit-Reset"]) - time.time() <= 61
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_the_general_limit_covers_the_whole_api_not_each_endpoint(api):
    for path in ("/templates", "/instances", "/contacts", "/templates"):
        assert api.get(path).status_code == 200

    assert api.get("/instances").status_code == 429


def test_another_key_is_counted_separately(api, outsider):
    exhaust(api, "/templates", 4)
    assert api.get("/templates").status_code == 429

    assert api.as_(outsider).get("/templates").status_code == 200


def test_requests_without_a_key_are_counted_by_client_address(api, client):
    anonymous = ApiClient(client, None)
    for _ in range(4):
        assert anonymous.get("/templates").status_code == 401
    assert anonymous.get("/templates").status_code == 429

    elsewhere = {"environ_base": {"REMOTE_ADDR": "10.9.8.7"}}
    assert anonymous.get("/templates", **elsewhere).status_code == 401
    assert api.get("/templates").status_code == 200


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(client):
    anonymous = ApiClient(client, None)
    for n in range(4):
        assert anonymous.get("/templates", headers={"X-Forwarded-For": f"1.2.3.{n}"}).status_code == 401

    assert anonymous.get("/templates", headers={"X-Forwarded-For": "1.2.3.99"}).status_code == 429


@pytest.mark.parametrize("limits", [{"TRUSTED_PROXY_HOPS": 1}])
def test_behind_a_trusted_proxy_the_address_it_saw_is_counted(client):
    anonymous = ApiClient(client, None)
    for n in range(4):
        spoofed = {"X-Forwarded-For": f"1.2.3.{n}, 203.0.113.7"}
        assert anonymous.get("/templates", headers=spoofed).status_code == 401

    assert anonymous.get("/templates", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
    assert anonymous.get("/templates", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 401


def test_the_performance_endpoint_has_a_stricter_limit_of_its_own(api):
    exhaust(api, SOME_INSTANCE, 2)

    response = api.get(SOME_INSTANCE)

    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert response.get_json()["statusCode"] == 429
    assert api.get("/templates").status_code == 200


def test_the_webhook_endpoint_has_its_own_limit(api):
    for _ in range(3):
        assert api.post("/events/webhook", json={}).status_code == 400

    response = api.post("/events/webhook", json={})

    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "3"


def test_health_checks_are_never_limited(client):
    for path in ("/healthz", "/readyz"):
        assert {client.get(path).status_code for _ in range(6)} == {200}


@pytest.mark.parametrize("limits", [{"RATELIMIT_ENABLED": False}])
def test_nothing_is_limited_when_disabled(client):
    anonymous = ApiClient(client, None)
    assert {anonymous.get("/templates").status_code for _ in range(6)} == {401}


def test_defaults_and_environment_overrides():
    script = "from webapp.config import Config as C; print(C.RATELIMIT_API, C.RATELIMIT_PERFORMANCE, sep='|')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATELIMIT_")}
    default = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert default.stdout.strip() == "100 per 15 minutes|20 per 5 minutes"

    env.update(RATELIMIT_API="7 per hour", RATELIMIT_PERFORMANCE="1 per minute")
    custom = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert custom.stdout.strip() == "7 per hour|1 per minute"


def test_memory_storage_is_the_default(app):
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert type(limiter.storage).__name__ == "MemoryStorage"


@pytest.fixture(scope="module")
def redis_url():
    """TEST_REDIS_URL (set by .ci/run), else a local Redis; skipped only when none answers."""
    import redis

    explicit = os.environ.get("TEST_REDIS_URL")
    url = explicit or "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as exc:
        if explicit:
            pytest.fail(f"TEST_REDIS_URL={url} does not answer: {exc}")
        pytest.skip(f"no Redis answers at {url}")
    return url


SECOND_PROCESS = """
import os, sys
from tests.conftest import make_config
from webapp import create_app

config = make_config(os.environ["DB_URL"], RATELIMIT_ENABLED=True, RATELIMIT_API="4 per minute",
                     RATELIMIT_STORAGE_URI=os.environ["REDIS_URL"], RATELIMIT_KEY_PREFIX=os.environ["PREFIX"])
client = create_app(config).test_client()
headers = {"Authorization": "Bearer " + os.environ["API_KEY"]}
print(*[client.get("/api/campaigns/v2/templates", headers=headers).status_code for _ in range(3)])
"""


class TestRedisStorage:
    @pytest.fixture
    def prefix(self, redis_url):
        import redis

        prefix = f"drumbeat-test-{uuid.uuid4().hex}"
        yield prefix
        connection = redis.Redis.from_url(redis_url)
        keys = list(connection.scan_iter(match=f"*{prefix}*"))
        if keys:
            connection.delete(*keys)

    @pytest.fixture
    def limits(self, redis_url, prefix):
        return {"RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix}

    def test_two_processes_share_the_counter(self, app, api, owner, redis_url, prefix, database_url_for_test):
        import redis

        assert type(limiter.storage).__name__ == "RedisStorage"
        env = {
            **os.environ,
            "DB_URL": database_url_for_test,
            "REDIS_URL": redis_url,
            "PREFIX": prefix,
            "API_KEY": owner.api_key,
        }
        other = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert other.stdout.split() == ["200", "200", "200"]

        assert api.get("/templates").headers["X-RateLimit-Remaining"] == "0"
        assert api.get("/templates").status_code == 429

        stored = [key.decode() for key in redis.Redis.from_url(redis_url).scan_iter(match=f"*{prefix}*")]
        assert stored
        secret = owner.api_key.rsplit("_", 1)[1]
        assert not any(secret in key for key in stored)
