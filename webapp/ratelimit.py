"""Rate-limit keys: the API key's public prefix when one is sent, else the client address."""

from flask import request


def presented_api_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def rate_limit_key() -> str:
    key = presented_api_key()
    if key and key.count("_") >= 2:
        # Only the public prefix: the secret part never reaches the limiter's storage.
        return "key:" + key.split("_")[1][:16]
    return "ip:" + (request.remote_addr or "unknown")
