"""Secrets at rest (mailbox passwords): encrypted with Fernet under the keys in ENCRYPTION_KEY.

ENCRYPTION_KEY holds one or more Fernet keys separated by commas. The first encrypts; every one
of them decrypts (MultiFernet), so keys can be rotated without downtime:

1. put a new key first: ``ENCRYPTION_KEY=<new>,<old>`` and restart;
2. run ``flask secrets rotate`` (re-encrypts every stored secret under the new key);
3. drop the old key: ``ENCRYPTION_KEY=<new>``.

Without ENCRYPTION_KEY a key is generated once into instance/encryption_key (like SECRET_KEY).
Plain text never leaves this module except to the code that uses it (an SMTP or IMAP login).
"""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts (a key was dropped too early)."""

    def __str__(self) -> str:
        return "a stored secret cannot be decrypted with ENCRYPTION_KEY: restore the key it was encrypted with"


def encrypt(plain: str) -> str:
    return _keys(current_app.config["ENCRYPTION_KEY"]).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _keys(current_app.config["ENCRYPTION_KEY"]).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable from None


def rotate(token: str) -> str:
    """`token` encrypted again under the first key."""
    try:
        return _keys(current_app.config["ENCRYPTION_KEY"]).rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable from None


def check_keys(value: str) -> None:
    """Raise ValueError naming the problem when ENCRYPTION_KEY is not a list of Fernet keys."""
    _keys(value)


@functools.lru_cache(maxsize=4)
def _keys(value: str) -> MultiFernet:
    keys = [key.strip() for key in (value or "").split(",") if key.strip()]
    if not keys:
        raise ValueError("ENCRYPTION_KEY is empty")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ValueError(
            "ENCRYPTION_KEY must be Fernet keys (32 url-safe base64-encoded bytes), separated by commas"
        ) from None
