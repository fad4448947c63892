"""Reading a mailbox over IMAP: new messages by UID, their headers first, a body on demand.

Pure engine code on the stdlib `imaplib`: no database, no Flask. One `ImapReader` is one
connection, opened read-only (EXAMINE), and every fetch uses ``BODY.PEEK`` so nothing is ever
marked ``\\Seen``. The caller keeps ``(uidvalidity, last_uid)`` per mailbox: while `uidvalidity()`
is unchanged, `headers_since(last_uid)` returns exactly the messages that arrived since; when it
changes, the server has renumbered the folder and the caller must start again from UID 0.

Every failure is an `ImapError` whose ``reason`` is one of `REASONS`, with a message fit for a
user; it never contains the password (neither does the repr of `ImapSettings`). Sockets always have
a timeout, and TLS verifies the certificate and host name unless the caller passes its own
``ssl_context``.
"""

import base64
import contextlib
import functools
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass, field

log = logging.getLogger("drumbeat.imap")

SECURITY_MODES = ("none", "starttls", "ssl")
AUTHENTICATION_FAILED = "authentication failed"
TLS_FAILED = "TLS handshake failed"
COULD_NOT_CONNECT = "could not connect"
TIMED_OUT = "timed out"
FOLDER_NOT_FOUND = "folder not found"
PROTOCOL_ERROR = "protocol error"
REASONS = (AUTHENTICATION_FAILED, TLS_FAILED, COULD_NOT_CONNECT, TIMED_OUT, FOLDER_NOT_FOUND, PROTOCOL_ERROR)
MAX_UID = 2**32 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FETCH_START = re.compile(rb"^\d+ \(")
_UID = re.compile(rb"[( ]UID (\d+)")
_SIZE = re.compile(rb"[( ]RFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # "none" | "starttls" | "ssl"
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0

    def __post_init__(self):
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}, not {self.security!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        for name in ("host", "username", "folder"):
            if not getattr(self, name) or _CONTROL.search(getattr(self, name)):
                raise ValueError(f"{name} must be non-empty, without control characters")
        if _CONTROL.search(self.password):
            raise ValueError("password must not contain control characters")


class ImapError(Exception):
    """An IMAP operation failed; ``reason`` is one of `REASONS`."""

    def __init__(self, reason: str, message: str):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Fetched:
    uid: int
    headers: bytes
    size: int  # RFC822.SIZE, in bytes


class ImapReader:
    """One connection to one folder, read-only. Use as a context manager::

    with ImapReader(settings) as reader:
        validity = reader.uidvalidity()
        for message in reader.headers_since(last_uid):
            ...
    """

    def __init__(self, settings: ImapSettings, *, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self._ssl_context = ssl_context
        self._conn: imaplib.IMAP4 | None = None
        self._uidvalidity: int | None = None
        self._broken = False

    def __repr__(self) -> str:
        s = self.settings
        return f"<ImapReader {s.username}@{s.host}:{s.port} {s.security} {s.folder!r}>"

    def __enter__(self) -> "ImapReader":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Connect, log in and select the folder read-only."""
        if self._conn is not None:
            return
        s = self.settings
        where = f"{s.host}:{s.port}"
        context = None if s.security == "none" else (self._ssl_context or _default_context())
        with self._errors(f"connecting to {where}"):
            if s.security == "ssl":
                conn = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout)
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        self._conn, self._broken = conn, False
        try:
            if s.security == "starttls":
                if "STARTTLS" not in conn.capabilities:
                    raise ImapError(TLS_FAILED, f"{where} does not offer STARTTLS")
                with self._errors(f"starting TLS with {where}", refused=TLS_FAILED):
                    conn.starttls(context)
            self._login()
            self._select()
        except BaseException:
            self.close()
            raise
        log.debug("imap connected", extra={"host": s.host, "port": s.port, "username": s.username})

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._broken:
                conn.logout()
                return
        except Exception:
            pass
        with contextlib.suppress(Exception):
            conn.shutdown()

    def uidvalidity(self) -> int:
        """The folder's UIDVALIDITY: UIDs carry over between connections only while it is unchanged."""
        self._require_open()
        if self._uidvalidity is None:
            with self._errors("reading UIDVALIDITY"):
                typ, data = self._conn.status(_mailbox_name(self.settings.folder), "(UIDVALIDITY)")
            match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"") if typ == "OK" and data else None
            if match is None:
                raise ImapError(PROTOCOL_ERROR, f"the server gave no UIDVALIDITY for {self.settings.folder!r}")
            self._uidvalidity = int(match.group(1))
        return self._uidvalidity

    def headers_since(self, last_uid: int, *, limit: int = 500) -> list[Fetched]:
        """Up to `limit` messages with a UID above `last_uid`, oldest first: headers and size only."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        return self.headers(self.uids_since(last_uid)[:limit])

    def uids_since(self, last_uid: int) -> list[int]:
        """The UIDs above `last_uid`, ascending: list them once, then fetch their `headers` in chunks."""
        self._require_open()
        if last_uid < 0:
            raise ValueError("last_uid must be >= 0")
        if last_uid >= MAX_UID:
            return []
        # `n:*` always includes the highest UID, even when it is below n: filter on the UID.
        with self._errors("listing new messages"):
            typ, data = self._conn.uid("FETCH", f"{last_uid + 1}:*", "(UID)")
        self._expect_ok(typ, data, "UID FETCH")
        return sorted({uid for uid, _, _ in _parse_fetch(data) if uid > last_uid})

    def headers(self, uids: list[int], *, fields: tuple[str, ...] = ()) -> list[Fetched]:
        """Headers and size of the messages `uids` (ascending, from `uids_since`), oldest first;
        those expunged meanwhile are left out. `fields`: only these headers (names of printable
        ASCII), not the whole header block."""
        self._require_open()
        if not uids:
            return []
        section = "HEADER"
        if fields:
            if not all(_FIELD_NAME.fullmatch(name) for name in fields):
                raise ValueError(f"not header names: {fields!r}")
            section = f"HEADER.FIELDS ({' '.join(fields).upper()})"
        # New messages only ever get higher UIDs, so this range holds exactly the chosen ones (minus
        # any expunged meanwhile).
        with self._errors("fetching headers"):
            typ, data = self._conn.uid("FETCH", f"{uids[0]}:{uids[-1]}", f"(UID RFC822.SIZE BODY.PEEK[{section}])")
        self._expect_ok(typ, data, "UID FETCH")
        wanted = set(uids)
        found = {
            uid: Fetched(uid, literal or b"", items[b"RFC822.SIZE"])
            for uid, items, literal in _parse_fetch(data)
            if uid in wanted and b"RFC822.SIZE" in items
        }
        return [found[uid] for uid in sorted(found)]

    def bodies(self, sizes: dict[int, int], *, max_bytes: int = 5 * 1024 * 1024, chunk_bytes: int = 16 * 1024 * 1024):
        """The whole messages `sizes` names (UID: its RFC822.SIZE, from `headers`), without marking
        them \\Seen, in as few round trips as `chunk_bytes` allows. Messages larger than `max_bytes`
        are not downloaded; they and the messages expunged meanwhile are left out."""
        self._require_open()
        wanted = sorted(uid for uid, size in sizes.items() if 0 < uid <= MAX_UID and size <= max_bytes)
        found: dict[int, bytes] = {}
        chunk: list[int] = []
        total = 0
        for position, uid in enumerate(wanted):
            chunk.append(uid)
            total += sizes[uid]
            if total >= chunk_bytes or position == len(wanted) - 1:
                with self._errors("fetching messages"):
                    typ, data = self._conn.uid("FETCH", ",".join(map(str, chunk)), "(UID BODY.PEEK[])")
                self._expect_ok(typ, data, "UID FETCH")
                wanted_here = set(chunk)
                found |= {u: lit for u, _, lit in _parse_fetch(data) if u in wanted_here and lit is not None}
                chunk, total = [], 0
        return found

    def beginnings(self, uids: list[int], *, max_bytes: int = 8192) -> dict[int, bytes]:
        """The first `max_bytes` of each message (its headers and the start of its body) in one
        round trip, without marking anything \\Seen: enough for a snippet of a message not read
        whole. Messages expunged meanwhile are left out."""
        self._require_open()
        wanted = {uid for uid in uids if 0 < uid <= MAX_UID}
        if not wanted:
            return {}
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._errors("fetching the beginnings of messages"):
            typ, data = self._conn.uid("FETCH", ",".join(map(str, sorted(wanted))), f"(UID BODY.PEEK[]<0.{max_bytes}>)")
        self._expect_ok(typ, data, "UID FETCH")
        return {uid: literal for uid, _, literal in _parse_fetch(data) if uid in wanted and literal is not None}

    # -- internals ---------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._conn is None:
            raise RuntimeError("ImapReader is not open: use it as a context manager")

    def _login(self) -> None:
        s, conn = self.settings, self._conn
        if "LOGINDISABLED" in conn.capabilities and s.security == "none":
            raise ImapError(AUTHENTICATION_FAILED, f"{s.host} refuses to log in without TLS: use STARTTLS or SSL")
        with self._errors(f"logging in as {s.username!r}", refused=AUTHENTICATION_FAILED):
            if s.username.isascii() and s.password.isascii():
                conn.login(s.username, s.password)
            else:  # LOGIN is ASCII only; AUTHENTICATE PLAIN carries UTF-8 (RFC 4616)
                plain = f"\0{s.username}\0{s.password}".encode()
                conn.authenticate("PLAIN", lambda _challenge: plain)

    def _select(self) -> None:
        folder = self.settings.folder
        with self._errors(f"opening folder {folder!r}"):
            typ, data = self._conn.select(_mailbox_name(folder), readonly=True)
        if typ != "OK":
            raise ImapError(FOLDER_NOT_FOUND, f"no folder {folder!r}: {self._server_text(data)}")
        validity = self._conn.untagged_responses.get("UIDVALIDITY")
        with contextlib.suppress(TypeError, ValueError):
            self._uidvalidity = int(validity[-1])

    def _expect_ok(self, typ: str, data, command: str) -> None:
        if typ != "OK":
            raise ImapError(PROTOCOL_ERROR, f"{command} failed: {self._server_text(data)}")

    def _server_text(self, data) -> str:
        parts = [d for d in (data or []) if isinstance(d, bytes)]
        return self._redact(b" ".join(parts).decode("utf-8", "replace")[:300] or "no explanation")

    def _redact(self, text: str) -> str:
        password = self.settings.password
        return text.replace(password, "***") if password else text

    @contextlib.contextmanager
    def _errors(self, doing: str, *, refused: str = PROTOCOL_ERROR):
        """Turn whatever `doing` raises into an ImapError with a reason and no password in it.

        `refused` is the reason for the server answering NO/BAD. After a timeout, a TLS failure or a
        lost connection the connection is unusable: `close()` then drops it without a LOGOUT.
        """
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            yield
        except ImapError:
            raise
        except imaplib.IMAP4.abort as exc:
            self._broken = True
            if _caused_by_timeout(exc):
                raise ImapError(TIMED_OUT, f"{where} did not answer within {s.timeout:g} s ({doing})") from None
            raise ImapError(PROTOCOL_ERROR, f"{where} broke off the session ({doing}): {self._describe(exc)}") from None
        except imaplib.IMAP4.error as exc:
            raise ImapError(refused, f"{doing} failed: {self._describe(exc)}") from None
        except TimeoutError:
            self._broken = True
            raise ImapError(TIMED_OUT, f"{where} did not answer within {s.timeout:g} s ({doing})") from None
        except ssl.SSLError as exc:  # includes certificate verification failures
            self._broken = True
            detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
            raise ImapError(TLS_FAILED, f"TLS with {where} failed ({doing}): {detail}") from None
        except OSError as exc:  # refused, unreachable, unknown host, reset
            self._broken = True
            raise ImapError(COULD_NOT_CONNECT, f"{doing} failed: {exc.strerror or exc}") from None

    def _describe(self, exc: Exception) -> str:
        text = exc.args[0] if exc.args else str(exc)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return self._redact(str(text))[:300]


@functools.cache
def _default_context() -> ssl.SSLContext:
    """The system's trust store, loaded once per process (it takes tens of milliseconds, and a worker
    logs in to every mailbox each INBOX_POLL_SECONDS)."""
    return ssl.create_default_context()


def check(settings: ImapSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
    """Connect, log in and select the folder; raises `ImapError` with a reason on any failure."""
    with ImapReader(settings, ssl_context=ssl_context):
        pass


def _caused_by_timeout(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _parse_fetch(data) -> list[tuple[int, dict[bytes, int], bytes | None]]:
    """imaplib's FETCH data as (uid, numeric items, literal) per message, skipping lines without a UID.

    imaplib gives one ``(text before the literal, literal)`` tuple per literal, then the rest of
    the line as bytes; a message without a literal is a single bytes item.
    """
    messages: list[tuple[bytes, bytes | None]] = []
    for item in data or []:
        if isinstance(item, tuple):
            messages.append((item[0], item[1]))
        elif isinstance(item, bytes):
            if _FETCH_START.match(item) or not messages:
                messages.append((item, None))
            else:  # what followed the last literal
                text, literal = messages[-1]
                messages[-1] = (text + item, literal)
    parsed = []
    for text, literal in messages:
        uid = _UID.search(text)
        if uid is None:
            continue
        items = {b"UID": int(uid.group(1))}
        size = _SIZE.search(text)
        if size is not None:
            items[b"RFC822.SIZE"] = int(size.group(1))
        parsed.append((items[b"UID"], items, literal))
    return parsed


_FIELD_NAME = re.compile(r"[!-9;-~]+")


def _mailbox_name(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    return '"' + encode_modified_utf7(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_modified_utf7(name: str) -> str:
    out, run = [], []

    def flush():
        if run:
            raw = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return "".join(out)
