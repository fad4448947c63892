"""Building outgoing messages and handing them to a transport.

`build_message` assembles the MIME bytes by hand instead of through `email.message.EmailMessage`:
every header line is written from a value we have validated, which is both ~20x cheaper and the
simplest way to be sure nothing user-controlled becomes a header of its own. Python 3.11.7's email
package turns RFC 2047 encoded words into extra headers when it refolds them (CVE-2024-6923), so any
header value we are given that contains a control character or ``=?`` is refused with
`HeaderInjection`; the worker records the reason and skips that send.

Transports share one interface, ``send(envelope_from, recipients, message_bytes, *, message_id)``:

- `SmtpTransport` keeps one connection open across sends and classifies every failure as
  `TransientSendError` (not delivered, retry later), `PermanentSendError` (refused with a 5xx) or
  `AmbiguousSendError` (the message was transmitted but no final answer came back: it may have been
  delivered, so it must be reconciled, never blindly resent).
- `OutboxTransport` stores messages (in a list or through a callback) instead of sending them.
"""

import binascii
import functools
import logging
import re
import secrets
import smtplib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Protocol

log = logging.getLogger("drumbeat.mailer")

SECURITY_MODES = ("none", "starttls", "ssl")
MAX_SUBJECT_CHARS = 998
# Headers this module writes itself, plus Bcc, which must never travel in a message's headers.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "bcc",
    }
)
# C0 and C1 controls (CR, LF, NUL, TAB, ...), the Unicode line and paragraph separators, which
# str.splitlines() - and so parts of the email package - treat as line breaks, and lone surrogates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,128}@[A-Za-z0-9.-]{1,253}>")
_ID_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")
_URL = re.compile(r"(?i:https?)://[!-~]+")
_NAMED_ADDRESS = re.compile(r"\s*(.*?)\s*<([^<>]*)>\s*")


class MessageError(ValueError):
    """A message cannot be built from these values."""


class HeaderInjection(MessageError):
    """A header value contains a control character or an encoded word (``=?``)."""


class InvalidAddress(MessageError):
    """An address is malformed, or needs SMTPUTF8 (a non-ASCII local part), which we do not send."""


class SendError(Exception):
    # Why a connection could not be used, for a connection check: "authentication failed", "TLS
    # handshake failed", "could not connect" or "timed out" (None for a refusal of a message).
    reason: str | None = None

    """A send failed. `code` is the SMTP reply code when there was one; `stage` says where it failed:
    connect, auth, mail, rcpt or data."""

    def __init__(self, code: int | None, message: str, *, stage: str | None = None):
        self.code = code
        self.message = message
        self.stage = stage
        super().__init__(f"{code} {message}" if code else message)


class TransientSendError(SendError):
    """Not delivered, and the server cannot have accepted it: retry later with backoff."""


class TransportConfigError(TransientSendError):
    """The transport itself is misconfigured (credentials, TLS, STARTTLS missing). Retrying this message
    alone will not help; the failure is transient for the recipient, but an operator must act."""


class PermanentSendError(SendError):
    """The server refused the message with a 5xx reply: do not retry it."""

    @property
    def recipient_refused(self) -> bool:
        """True when the refusal is about the recipient (a hard bounce), not the sender or the content."""
        return self.stage == "rcpt" or self.message.lstrip().startswith("5.1.")


class AmbiguousSendError(SendError):
    """The whole message was transmitted but the final reply never came: it may have been delivered."""


def make_message_id(delivery_id, domain: str) -> str:
    """``<delivery_id@domain>``: deterministic, so a retry or a reconciliation finds the same message.

    Raises `MessageError` if the id has characters other than letters, digits, ``.``, ``_`` and ``-``
    (a UUID is fine) or if the domain is not a host name.
    """
    local = str(delivery_id)
    if not _ID_PART.fullmatch(local):
        raise MessageError("a message id must be built from letters, digits, '.', '_' and '-'")
    return f"<{local}@{_domain(domain)}>"


def parse_address(value: str | tuple[str | None, str]) -> tuple[str, str]:
    """Split ``"Name <a@b>"``, ``"a@b"`` or ``(name, "a@b")`` into a checked (display name, address) pair.

    The address comes back with an IDNA (punycode) domain. Raises `HeaderInjection` for a display name
    with control characters or ``=?``, `InvalidAddress` for anything that is not a plain ASCII address.
    """
    if isinstance(value, tuple):
        name, address = value
        name = name or ""
    elif isinstance(value, str):
        check_header_value(value, "address")
        match = _NAMED_ADDRESS.fullmatch(value)
        name, address = (match.group(1), match.group(2)) if match else ("", value)
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
    else:
        raise InvalidAddress("an address must be text")
    check_header_value(name, "display name")
    return name.strip(), _address(address)


def check_header_value(value: str, what: str = "header value") -> str:
    """Return `value` unchanged, or raise `HeaderInjection` if it holds a control character or ``=?``."""
    if not isinstance(value, str):
        raise HeaderInjection(f"{what} must be text")
    if _CONTROL.search(value):
        raise HeaderInjection(f"{what} contains a control character (such as a line break)")
    if "=?" in value:
        raise HeaderInjection(f"{what} contains '=?', which mail programs may decode into extra headers")
    return value


def build_message(
    *,
    from_addr: str | tuple[str | None, str],
    to_addr: str | tuple[str | None, str],
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None = None,
    headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    """The wire bytes (CRLF line endings) of one message, ready for `Transport.send`.

    The message is multipart/alternative (text, then html) or plain text when `html` is None, both
    parts UTF-8 and quoted-printable. It carries From, To, Subject, Date (`date` or now), the given
    Message-ID, MIME-Version, ``List-Unsubscribe: <url>[, <mailto:...>]`` and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058; one-click needs an https URL), then
    `headers` (ASCII values; a header this function writes, or Bcc, is refused).

    Raises `HeaderInjection` when the subject, a display name or an extra header holds a control
    character or ``=?``; `InvalidAddress` for a bad address; `MessageError` for a malformed message id,
    unsubscribe URI, header name or naive `date`, or a subject over 998 characters.
    """
    from_name, from_address = parse_address(from_addr)
    to_name, to_address = parse_address(to_addr)
    check_header_value(subject, "subject")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise MessageError(f"the subject is longer than {MAX_SUBJECT_CHARS} characters")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise MessageError("message_id must look like <id@domain> (see make_message_id)")
    unsubscribe = [f"<{_unsubscribe_url(unsubscribe_url)}>"]
    if unsubscribe_mailto:
        unsubscribe.append(f"<{_unsubscribe_mailto(unsubscribe_mailto)}>")
    if date is not None and date.utcoffset() is None:
        raise MessageError("date must be timezone-aware")
    when = (date or datetime.now(UTC)).astimezone(UTC)

    lines = [
        "From: " + _format_address(from_name, from_address),
        "To: " + _format_address(to_name, to_address),
        "Subject: " + _encode_text("Subject", subject),
        "Date: " + _date_header(when.replace(microsecond=0)),
        "Message-ID: " + message_id,
        "MIME-Version: 1.0",
        "List-Unsubscribe: "
        + (",\r\n ".join(unsubscribe) if len(", ".join(unsubscribe)) > 60 else ", ".join(unsubscribe)),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]
    for name, value in (headers or {}).items():
        lines.append(f"{_extra_header_name(name)}: {_extra_header_value(name, value)}")
    head = "\r\n".join(lines).encode("ascii")

    if html is None:
        return head + b"\r\n" + _part_headers("plain") + b"\r\n\r\n" + _qp(text)
    # "=_" can never occur in quoted-printable text (a literal "=" is written "=3D"), so the boundary
    # cannot collide with a part's content.
    boundary = ("=_drumbeat_" + secrets.token_hex(12)).encode("ascii")
    return b"\r\n".join(
        [
            head,
            b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"',
            b"",
            b"--" + boundary,
            _part_headers("plain"),
            b"",
            _qp(text),
            b"--" + boundary,
            _part_headers("html"),
            b"",
            _qp(html),
            b"--" + boundary + b"--",
            b"",
        ]
    )


class Transport(Protocol):
    def send(
        self,
        envelope_from: str,
        recipients: Iterable[str] | str,
        message_bytes: bytes,
        *,
        message_id: str | None = None,
        before_handover: Callable[[], None] | None = None,
    ) -> dict[str, tuple[int, str]]:
        """`before_handover` is called just before the message is handed over (SMTP: after the
        server's 354 to DATA, before the text); if it raises, the message is withdrawn (the
        connection is dropped, so the server discards it) and the exception propagates."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutboxMessage:
    envelope_from: str
    recipients: tuple[str, ...]
    message_bytes: bytes
    message_id: str | None


class OutboxTransport:
    """Keeps messages instead of sending them: appended to a list, or handed to a callback.

    `sink` is a list (messages are appended), a callable taking an `OutboxMessage`, or None: then the last
    `keep` messages stay in `messages` (a bounded deque, so a long-running worker does not grow without
    limit). `stores_messages` tells callers that nothing is delivered, so a durable copy (the database
    outbox) is theirs to write. Arguments are checked exactly as `SmtpTransport` checks them.
    """

    stores_messages = True

    def __init__(self, sink: list | Callable[[OutboxMessage], None] | None = None, *, keep: int = 1000):
        self.messages: list[OutboxMessage] | deque[OutboxMessage] | None = None
        if sink is None or isinstance(sink, list):
            self.messages = deque(maxlen=keep) if sink is None else sink
            self._deliver = self.messages.append
        elif callable(sink):
            self._deliver = sink
        else:
            raise TypeError("sink must be a list or a callable")

    def send(
        self,
        envelope_from: str,
        recipients: Iterable[str] | str,
        message_bytes: bytes,
        *,
        message_id: str | None = None,
        before_handover: Callable[[], None] | None = None,
    ) -> dict[str, tuple[int, str]]:
        """Store the message. Raises `InvalidAddress`/`TypeError` for bad arguments; returns {} (nobody refused)."""
        sender, rcpts, data = _envelope(envelope_from, recipients, message_bytes)
        if before_handover is not None:
            before_handover()
        self._deliver(OutboxMessage(sender, tuple(rcpts), data, message_id))
        return {}

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class SmtpTransport:
    """An SMTP client that reuses one connection for many sends. Not thread-safe: one per worker thread.

    The connection opens on the first `send`, is reused, and is replaced after
    `max_messages_per_connection` messages or when the server has dropped it (detected at MAIL FROM,
    before anything of the next message was sent, so the retry is safe). `security` is ``none``,
    ``starttls`` (required: a server without STARTTLS is a `TransportConfigError`) or ``ssl``.
    The password is never logged or shown in `repr`.
    """

    stores_messages = False

    def __init__(
        self,
        host: str = "localhost",
        port: int = 25,
        *,
        security: str = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_messages_per_connection: int = 100,
    ):
        if security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}, not {security!r}")
        if max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be at least 1")
        self.host = host
        self.port = int(port)
        self.security = security
        self.username = username or None
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.max_messages_per_connection = max_messages_per_connection
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self.connections_opened = 0

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"SmtpTransport({self.host!r}, {self.port}, security={self.security!r}{user})"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def send(
        self,
        envelope_from: str,
        recipients: Iterable[str] | str,
        message_bytes: bytes,
        *,
        message_id: str | None = None,
        before_handover: Callable[[], None] | None = None,
    ) -> dict[str, tuple[int, str]]:
        """Send one message. Returns the recipients the server refused while accepting the others
        (empty in the usual one-recipient case). `before_handover` runs once the server has said
        354 to DATA, before the text and its end-of-data are written; an exception from it drops
        the connection (the server discards a message without its end-of-data) and propagates.

        Raises `TransientSendError` (connection failure or timeout before the message was complete,
        4xx replies; `TransportConfigError` for credentials/TLS), `PermanentSendError` (5xx replies;
        `recipient_refused` tells a hard bounce), `AmbiguousSendError` (connection lost after the whole
        message was sent), and `InvalidAddress`/`TypeError` for bad arguments, before any network I/O.
        """
        sender, rcpts, data = _envelope(envelope_from, recipients, message_bytes)
        conn = self._start_transaction(sender)
        refused = self._recipients(conn, rcpts)
        self._data(conn, data, before_handover)
        self._sent_on_connection += 1
        log.info("smtp message sent", extra={"message_id": message_id, "recipients": len(rcpts) - len(refused)})
        if self._sent_on_connection >= self.max_messages_per_connection:
            self.close()
        return refused

    def check(self) -> None:
        """Connect, say EHLO, start TLS and log in as a send would, then QUIT. Raises a SendError
        whose `reason` says what failed; the password never appears in it."""
        self.close()
        self._connection()
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open. Never raises."""
        conn, self._conn = self._conn, None
        self._sent_on_connection = 0
        if conn is None:
            return
        try:
            conn.quit()
        except OSError:  # smtplib's exceptions are OSErrors too
            pass
        finally:
            conn.close()

    def _start_transaction(self, sender: str) -> smtplib.SMTP:
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                # What conn.mail() sends, without its address parsing: `_envelope` checked the address.
                code, reply = conn.docmd("mail", f"from:<{sender}>")
            except OSError as exc:
                self._discard()
                if reused and attempt == 1:
                    log.info("smtp connection was closed by the server; reconnecting")
                    continue
                raise TransientSendError(None, f"connection lost at MAIL FROM: {exc}", stage="mail") from None
            if code == 421 and reused and attempt == 1:
                self._discard()
                continue
            if code != 250:
                self._after_refusal(code)
                raise _classify(code, reply, "mail")
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _recipients(self, conn: smtplib.SMTP, rcpts: list[str]) -> dict[str, tuple[int, str]]:
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in rcpts:
            try:
                code, reply = conn.docmd("rcpt", f"to:<{rcpt}>")
            except OSError as exc:
                self._discard()
                raise TransientSendError(None, f"connection lost at RCPT TO: {exc}", stage="rcpt") from None
            if code == 421:
                self._discard()
                raise _classify(code, reply, "rcpt")
            if code not in (250, 251):
                refused[rcpt] = (code, _text(reply))
        if len(refused) == len(rcpts):
            self._reset()
            # Retry if any refusal was temporary; a permanent verdict needs every recipient refused for good.
            code, reply = min(refused.values(), key=lambda item: item[0] // 100 != 4)
            raise _classify(code, reply, "rcpt")
        return refused

    def _data(self, conn: smtplib.SMTP, data: bytes, before_handover: Callable[[], None] | None = None) -> None:
        try:
            code, reply = conn.docmd("DATA")
        except OSError as exc:
            self._discard()
            raise TransientSendError(None, f"connection lost at DATA: {exc}", stage="data") from None
        if code != 354:
            self._after_refusal(code)
            raise _classify(code, reply, "data")
        if before_handover is not None:
            try:
                before_handover()
            except BaseException:
                self._discard()  # after DATA, only a dropped connection takes the message back
                raise
        try:
            conn.send(_dot_stuffed(data))
        except OSError as exc:
            # The terminating "." is the last thing written; if writing failed the server cannot accept it.
            self._discard()
            raise TransientSendError(None, f"connection lost while sending the message: {exc}", stage="data") from None
        try:
            code, reply = conn.getreply()
        except OSError as exc:
            self._discard()
            raise AmbiguousSendError(
                None, f"connection lost after the message was sent; it may have been delivered ({exc})", stage="data"
            ) from None
        if code == 421:
            self._discard()
        if code != 250:
            raise _classify(code, reply, "data")

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._open()
            self._sent_on_connection = 0
            self.connections_opened += 1
        return self._conn

    def _open(self) -> smtplib.SMTP:
        where = f"{self.host}:{self.port}"
        if self._ssl_context is None and self.security != "none":
            # Made once, when TLS is used: loading the system's certificates takes tens of milliseconds.
            self._ssl_context = ssl.create_default_context()
        context = self._ssl_context
        try:
            if self.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout, context=context
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise _because(
                TransportConfigError(None, f"TLS certificate of {where} rejected: {exc}", stage="connect"), TLS_FAILED
            ) from None
        except smtplib.SMTPConnectError as exc:
            raise _because(
                TransientSendError(
                    exc.smtp_code, f"{where} refused the connection: {_text(exc.smtp_error)}", stage="connect"
                ),
                NO_CONNECTION,
            ) from None
        except OSError as exc:
            error = TransientSendError(None, f"cannot connect to {where}: {exc}", stage="connect")
            raise _because(error, _connect_reason(exc)) from None
        try:
            conn.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise TransportConfigError(None, f"{where} does not offer STARTTLS", stage="connect")
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self._password or "")
        except TransportConfigError as exc:
            conn.close()
            raise _because(exc, TLS_FAILED) from None
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            # The server's reply only: smtplib never puts the password in it.
            raise _because(
                TransportConfigError(exc.smtp_code, f"authentication failed: {_text(exc.smtp_error)}", stage="auth"),
                AUTH_FAILED,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            conn.close()
            raise _because(TransportConfigError(None, f"{where}: {exc}", stage="auth"), AUTH_FAILED) from None
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise _because(
                TransportConfigError(None, f"TLS certificate of {where} rejected: {exc}", stage="connect"), TLS_FAILED
            ) from None
        except smtplib.SMTPResponseException as exc:
            conn.close()
            # A 5xx to EHLO or STARTTLS refuses us, not this message: an operator must look.
            error = TransportConfigError if 500 <= exc.smtp_code < 600 else TransientSendError
            raise _because(error(exc.smtp_code, _text(exc.smtp_error), stage="connect"), NO_CONNECTION) from None
        except OSError as exc:
            conn.close()
            error = TransientSendError(None, f"connection to {where} failed: {exc}", stage="connect")
            raise _because(error, _connect_reason(exc)) from None
        log.info(
            "smtp connected",
            extra={"host": self.host, "port": self.port, "security": self.security, "smtp_user": self.username},
        )
        return conn

    def _reset(self) -> None:
        """RSET after a refused transaction so the connection can carry the next message."""
        if self._conn is None:
            return
        try:
            code, _ = self._conn.rset()
        except OSError:
            self._discard()
            return
        if code != 250:
            self._discard()

    def _after_refusal(self, code: int) -> None:
        if code == 421:
            self._discard()
        else:
            self._reset()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._sent_on_connection = 0
        if conn is not None:
            conn.close()


AUTH_FAILED = "authentication failed"
TLS_FAILED = "TLS handshake failed"
NO_CONNECTION = "could not connect"
TIMED_OUT = "timed out"


def _because(error: SendError, reason: str) -> SendError:
    error.reason = reason
    return error


def _connect_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return TIMED_OUT
    if isinstance(exc, ssl.SSLError):
        return TLS_FAILED
    return NO_CONNECTION


def transport_from_config(
    config: Mapping, *, outbox: list | Callable[[OutboxMessage], None] | None = None
) -> OutboxTransport | SmtpTransport:
    """A transport from MAIL_TRANSPORT (outbox | smtp) and SMTP_HOST, SMTP_PORT, SMTP_SECURITY,
    SMTP_USERNAME, SMTP_PASSWORD, SMTP_TIMEOUT (seconds, default 30) and SMTP_HELO_NAME.

    `outbox` is the sink for the outbox transport. Raises ValueError for an unknown transport or security.
    """
    kind = str(config.get("MAIL_TRANSPORT") or "outbox").strip().lower()
    if kind == "outbox":
        return OutboxTransport(outbox)
    if kind == "smtp":
        return SmtpTransport(
            config.get("SMTP_HOST") or "localhost",
            int(config.get("SMTP_PORT") or 25),
            security=str(config.get("SMTP_SECURITY") or "none").strip().lower(),
            username=config.get("SMTP_USERNAME") or None,
            password=config.get("SMTP_PASSWORD") or None,
            timeout=float(config.get("SMTP_TIMEOUT") or 30),
            local_hostname=config.get("SMTP_HELO_NAME") or None,
        )
    raise ValueError(f"MAIL_TRANSPORT must be 'outbox' or 'smtp', not {kind!r}")


def _classify(code: int, reply, stage: str) -> SendError:
    if code == 530:
        # "Authentication required" / "must issue STARTTLS first": our setup is wrong, not this message.
        return TransportConfigError(code, _text(reply), stage=stage)
    if 500 <= code < 600:
        return PermanentSendError(code, _text(reply), stage=stage)
    # 4xx, and anything a well-behaved server should not have said here: nothing was accepted.
    return TransientSendError(code, _text(reply), stage=stage)


def _text(reply) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:500]


def _envelope(envelope_from, recipients, message_bytes) -> tuple[str, list[str], bytes]:
    sender = "" if envelope_from == "" else _address(envelope_from)
    rcpts = [_address(r) for r in ([recipients] if isinstance(recipients, str) else list(recipients))]
    if not rcpts:
        raise InvalidAddress("at least one recipient is required")
    if not isinstance(message_bytes, (bytes, bytearray)):
        raise TypeError("message_bytes must be bytes (see build_message)")
    return sender, rcpts, bytes(message_bytes)


def _address(value) -> str:
    if not isinstance(value, str) or _CONTROL.search(value) or "=?" in value:
        raise InvalidAddress("an address must be text without control characters or '=?'")
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"'{address[:80]}' is not an email address")
    if not local.isascii():
        raise InvalidAddress(f"'{address[:80]}' has a non-ASCII local part (needs SMTPUTF8, which is not supported)")
    if not _LOCAL_PART.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddress(f"'{address[:80]}' is not an email address")
    try:
        return f"{local}@{_domain(domain)}"
    except MessageError:
        raise InvalidAddress(f"'{address[:80]}' has an invalid domain") from None


@functools.lru_cache(maxsize=1024)
def _domain(domain: str) -> str:
    # Cached: the same few domains come back for every message (sender, recipients' providers).
    if not isinstance(domain, str):
        raise MessageError("a domain must be text")
    try:
        ascii_domain = domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise MessageError(f"'{domain[:80]}' is not a valid domain") from None
    if not _DOMAIN.fullmatch(ascii_domain):
        raise MessageError(f"'{domain[:80]}' is not a valid domain")
    return ascii_domain


def _format_address(name: str, address: str) -> str:
    if not name:
        return address
    if name.isascii() and len(name) <= 200:
        return formataddr((name, address))
    return _encode_text("", name, force_encoding=True) + f" <{address}>"


def _encode_text(header_name: str, value: str, *, force_encoding: bool = False) -> str:
    """A folded header value: plain ASCII stays readable, anything else becomes RFC 2047 encoded words."""
    if not force_encoding and value.isascii() and len(header_name) + 2 + len(value) <= 78:
        return value  # fits on the header's line: what Header.encode returns for it, without the work
    # A word too long to fold would break the 998-octet line limit; encoded words can be split anywhere.
    readable = not force_encoding and value.isascii() and all(len(word) < 900 for word in value.split())
    header = Header(value, "us-ascii" if readable else "utf-8", header_name=header_name or None)
    return header.encode(linesep="\r\n", maxlinelen=78)


def _unsubscribe_url(url: str) -> str:
    if not isinstance(url, str) or not _URL.fullmatch(url) or "=?" in url or any(ch in url for ch in "<>,"):
        raise MessageError("unsubscribe_url must be an absolute http(s) URL without spaces, '<', '>' or ','")
    return url


def _unsubscribe_mailto(value: str) -> str:
    if not isinstance(value, str):
        raise MessageError("unsubscribe_mailto must be text")
    mailto = value if value.lower().startswith("mailto:") else f"mailto:{value}"
    address, _, query = mailto[len("mailto:") :].partition("?")
    _address(address)
    if not re.fullmatch(r"[!-~]*", query) or any(ch in query for ch in "<>,") or "=?" in query:
        raise MessageError("unsubscribe_mailto has characters that are not allowed")
    return mailto


@functools.lru_cache(maxsize=16)
def _date_header(when: datetime) -> str:
    # Cached: a worker writes the same second into many messages in a row.
    return format_datetime(when, usegmt=True)


@functools.lru_cache(maxsize=256)
def _extra_header_name(name: str) -> str:
    # Cached: the same few names (the providers' correlation headers) come with every message.
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise MessageError(f"'{str(name)[:80]}' is not a valid header name")
    if name.lower() in _RESERVED_HEADERS:
        raise MessageError(f"the {name} header cannot be set through headers")
    return name


def _extra_header_value(name: str, value: str) -> str:
    check_header_value(value, f"{name} header")
    if not value.isascii() or len(value) > 900:
        raise MessageError(f"the {name} header must be ASCII and at most 900 characters")
    return value


def _part_headers(subtype: str) -> bytes:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable').encode(
        "ascii"
    )


def _qp(text: str) -> bytes:
    # A lone surrogate (possible in JSON input) cannot be encoded; "?" is better than a crashed send.
    data = _crlf(text.encode("utf-8", "replace"))
    # b2a_qp writes soft line breaks as bare LF unless the input already had a CRLF.
    return _crlf(binascii.b2a_qp(data, istext=True))


def _crlf(data: bytes) -> bytes:
    """Every line ending (CRLF, bare CR, bare LF) as CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _dot_stuffed(message: bytes) -> bytes:
    # Normalising every line ending to CRLF first leaves no bare LF or CR for an "SMTP smuggling"
    # end-of-data sequence, whatever bytes the caller passed.
    data = _crlf(message).replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"
