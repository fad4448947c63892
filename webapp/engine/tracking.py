"""Signed tokens for the open pixel, tracked clicks and unsubscribe links, and the HTML rewriting that uses them.

A token is an itsdangerous URL-safe signed JSON payload. The kind is part of the signing salt, so an
open token can never be replayed as a click or unsubscribe token. Tokens do not expire: links in
old emails must keep working (CAN-SPAM wants unsubscribe to work for at least 30 days; opens and
clicks are meaningful for as long as the email exists). Rotate the secret by passing a list of
secrets, newest last: tokens signed with any of them are read, new ones use the newest.

Payloads use one-letter keys to keep links short (values are strings; ids are str(UUID)):

- ``open``: ``{"d": delivery_id}`` -> ``/t/o/<token>``
- ``click``: ``{"d": delivery_id, "u": target_url}`` -> ``/t/c/<token>``; the target URL is inside the
  signed payload, so the redirect can only go where the email pointed (no open redirect), and it is
  bound to the delivery that carried it.
- ``unsubscribe``: ``{"w": workspace_id}`` plus ``"e": enrollment_id`` and/or ``"c": contact_id``
  -> ``/u/<token>``
"""

import functools
import html as html_lib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer

# kind -> (required keys, optional keys)
KINDS = {
    "open": ({"d"}, set()),
    "click": ({"d", "u"}, set()),
    "unsubscribe": ({"w"}, {"e", "c"}),
}
PATHS = {"open": "/t/o/", "click": "/t/c/", "unsubscribe": "/u/"}
# Far above any real token (a click token for a 2,000-character URL is ~2,800 characters); refusing
# longer input early means nobody can make us verify or decompress megabytes.
MAX_TOKEN_CHARS = 4096
MAX_VALUE_CHARS = 2048
# nh3 serialises every attribute double-quoted with `"` escaped, so this matches every link it emits.
_ANCHOR_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)


class BadToken(Exception):
    """The token was tampered with, signed with another secret, made for another kind, or malformed."""


def make_token(kind: str, payload: Mapping[str, str], secret: str | bytes | Sequence[str | bytes]) -> str:
    """Sign `payload` for `kind` (see the module docstring for the payload of each kind).

    Raises ValueError for an unknown kind, missing or unexpected keys, non-string or overlong values,
    or (for clicks) a URL that is not absolute http(s).
    """
    return _serializer(kind, secret).dumps(_checked(kind, payload, ValueError))


def read_token(kind: str, token: str, secret: str | bytes | Sequence[str | bytes]) -> dict[str, str]:
    """The payload of a token made by `make_token` for the same `kind`; raises `BadToken` otherwise."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise BadToken("malformed token")
    try:
        payload = _serializer(kind, secret).loads(token)
    except BadData:
        raise BadToken("invalid token") from None
    return _checked(kind, payload, BadToken)


def token_url(base_url: str, kind: str, token: str) -> str:
    """The public URL serving `token`, e.g. ``https://app.example/t/c/<token>``."""
    if kind not in PATHS:
        raise ValueError(f"unknown token kind {kind!r}")
    return base_url.rstrip("/") + PATHS[kind] + token


def rewrite_links(html: str, make_click_url: Callable[[str], str], *, keep: Iterable[str] = ()) -> str:
    """Point every http(s) link of sanitized `html` at the click tracker.

    `make_click_url(original_url)` returns the tracking URL (typically
    ``token_url(base, "click", make_token("click", {"d": delivery_id, "u": original_url}, secret))``).
    mailto: and other schemes, and URLs listed in `keep` (the unsubscribe link: it must work without
    a redirect), are left alone. Only ``<a href="...">`` is rewritten; images are not links.
    Expects nh3-sanitized HTML (double-quoted attributes), which is what `render_message` produces.
    """
    kept = set(keep)

    def replace(match: re.Match) -> str:
        url = html_lib.unescape(match.group(2))
        if url in kept or not _is_web_url(url):
            return match.group(0)
        return match.group(1) + html_lib.escape(make_click_url(url), quote=True) + match.group(3)

    return _ANCHOR_HREF.sub(replace, html)


def pixel_html(url: str) -> str:
    """A 1x1 image tag for the open pixel, to append at the end of the HTML part."""
    if not _is_web_url(url):
        raise ValueError("the pixel URL must be an absolute http(s) URL")
    return (
        f'<img src="{html_lib.escape(url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px">'
    )


def _serializer(kind: str, secret) -> URLSafeSerializer:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    if not secret:
        raise ValueError("a secret is required")
    # A list of secrets, newest last, lets tokens signed before a rotation still verify.
    return _cached_serializer(kind, tuple(secret) if isinstance(secret, (list, tuple)) else secret)


@functools.lru_cache(maxsize=64)
def _cached_serializer(kind: str, secret: str | bytes | tuple) -> URLSafeSerializer:
    # Serializers keep no state between calls; building one (and its key) costs as much as a token.
    return URLSafeSerializer(list(secret) if isinstance(secret, tuple) else secret, salt=f"drumbeat.{kind}")


def _checked(kind: str, payload, error: type[Exception]) -> dict[str, str]:
    required, optional = KINDS[kind]
    if not isinstance(payload, Mapping):
        raise error("a token payload must be an object")
    keys = set(payload)
    if not required <= keys or not keys <= required | optional:
        raise error(f"a {kind} token needs {', '.join(sorted(required))}")
    for key, value in payload.items():
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
            raise error(f"{key} must be a non-empty string of at most {MAX_VALUE_CHARS} characters")
    if kind == "unsubscribe" and not keys & {"e", "c"}:
        raise error("an unsubscribe token needs e (enrollment id) or c (contact id)")
    if kind == "click" and not _is_web_url(payload["u"]):
        raise error("a click token's url must be an absolute http(s) URL")
    return dict(payload)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and not re.search(r"[\x00-\x20]", url)
