"""Classifying one received message: a reply, an auto-reply, a bounce (DSN) or something else.

Pure: bytes in, a frozen `Inbound` out; no database, network or Flask. `services/inbox` reads the
mailboxes and matches what this returns to our deliveries.

Decisions a caller relies on:

- Message-IDs (`message_id`, `in_reply_to`, `returned_message_ids`) are bare and lower-cased:
  ``<7F3E...@Acme.test>`` becomes ``7f3e...@acme.test``. Ours are a delivery id (a UUID) at a
  lower-case domain, so comparing lower-cased ids loses nothing and survives a relay that changes case.
- Order of checks: bounce, then auto-reply, then reply. A DSN often carries ``Auto-Submitted``
  too, and a bounce must never count as a human answer. A DSN that reports only successful
  deliveries is `Kind.OTHER`.
- A bounce names the message it returns by `returned_message_ids` (its Message-ID, In-Reply-To and
  References) and by `returned_delivery_id`, its ``X-Drumbeat-Delivery-Id`` as a canonical UUID
  string: that one still matches when a relay rewrote the Message-ID.
- `bounce_type` follows the status class: 5.x.x is "hard", 4.x.x or ``Action: delayed`` is
  "soft". ``Action: failed`` with a 4.x.x status (the relay gave up retrying) stays "soft":
  the address itself was not refused.
- `snippet` is at most `SNIPPET_CHARS` of the new text (`strip_quoted`), whitespace collapsed.
- `return_date` is the date an auto-reply names as the end of the absence ("back on 12 January",
  "until 12 January", "ab dem 12.01."). A date without a year takes the year of the message's
  Date, or the next year when that would put it more than 30 days before the message; without a
  Date header, only dates that state their year are read.
- `classify` never raises. Input it cannot parse as a whole (MIME nested deeper than Python's
  parser can recurse, for instance) is classified from its header block alone, and failing that
  comes back as an empty `Kind.OTHER`. Only the first `MAX_RAW_BYTES` of a message and the first
  `MAX_TEXT_BYTES` of each text part are read.
"""

import binascii
import codecs
import contextlib
import datetime as dt
import logging
import quopri
import re
import uuid
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import parseaddr, parsedate_to_datetime
from enum import StrEnum
from html import unescape
from html.parser import HTMLParser

log = logging.getLogger("drumbeat.inbound")

SNIPPET_CHARS = 280
MAX_RAW_BYTES = 8 * 1024 * 1024
MAX_TEXT_BYTES = 256 * 1024
# Enough new text for a snippet and for finding a return date in an out-of-office notice.
_NEW_TEXT_CHARS = 4000
_MAX_PARTS = 200
_MAX_DEPTH = 12
_MAX_IDS = 100
_MAX_ID_CHARS = 250
_MAX_HEADER_CHARS = 16 * 1024
_DIAGNOSTIC_CHARS = 300


class Kind(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    OTHER = "other"


@dataclass(frozen=True)
class Inbound:
    """What one received message is, and what in it matters to Drumbeat."""

    kind: Kind
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    from_address: str | None = None
    from_name: str | None = None
    subject: str = ""
    date: dt.datetime | None = None
    snippet: str = ""
    # Bounces.
    bounce_type: str | None = None
    status: str | None = None
    diagnostic: str | None = None
    final_recipient: str | None = None
    returned_message_ids: tuple[str, ...] = ()
    returned_delivery_id: str | None = None
    # Auto-replies.
    return_date: dt.date | None = None
    # The headers suggest a delivery failure report (what `looks_like_bounce` says of them).
    bounce_hint: bool = False


def classify(raw: bytes, *, headers_only: bool = False) -> Inbound:
    """Classify one message from its raw RFC 5322 bytes.

    With ``headers_only=True`` only the header block is read (the part of `raw` before the first
    empty line): the kind is decided from headers, the snippet is empty, and a bounce has no
    details; fetch the body when `looks_like_bounce` says so. Never raises.
    """
    data = _as_bytes(raw)
    try:
        return _classify(data, headers_only=headers_only)
    except Exception as exc:  # hostile input must never stop an inbox poll
        _log_unparseable("message unparseable; classified from its headers", exc, len(data))
    try:
        return _classify(data, headers_only=True)
    except Exception as exc:
        _log_unparseable("message headers unparseable", exc, len(data))
        return Inbound(kind=Kind.OTHER)


def looks_like_bounce(headers: bytes) -> bool:
    """True when a message's header block suggests a delivery failure report, so its body should be
    fetched and passed to `classify`: a ``multipart/report`` (other than a read receipt), a sender
    such as MAILER-DAEMON or postmaster, an NDR header (``X-Failed-Recipients``,
    ``X-MS-Exchange-Message-Is-Ndr``) or a subject like "Undeliverable:". Never raises."""
    data = _as_bytes(headers)
    try:
        return _bounce_hint(_HeaderBlock(_header_block(data))) is not None
    except Exception as exc:
        _log_unparseable("message headers unparseable", exc, len(data))
        return False


def strip_quoted(text: str) -> str:
    """The new text of a message body: lines up to the quoted message or the signature.

    Removed: ``>`` quoted lines; attribution lines ("On ... wrote:", "Le ... a écrit :",
    "Am ... schrieb ...:", "El ... escribió:", across up to three wrapped lines); everything from an
    Outlook header block ("From:/De :/Von:/De:" followed by "Sent:/Envoyé :/Gesendet:/Enviado:",
    "To:", "Subject:" ...), an "-----Original Message-----" style separator, a line of underscores,
    a "-- " signature separator or a mobile signature ("Sent from my iPhone", "Envoyé de mon
    iPhone", "Von meinem iPhone gesendet", "Enviado desde mi iPhone"). Text between quoted blocks
    (answers written inline) is kept. Line breaks are kept; leading and trailing space is not.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    size = 0
    i = 0
    while i < len(lines) and size < _NEW_TEXT_CHARS:
        line = _spaces(lines[i]).strip()
        if line.startswith(">"):
            i += 1
            continue
        if line == "--" or _MOBILE_SIGNATURE.fullmatch(line) or _SEPARATOR.fullmatch(line) or _outlook_header(lines, i):
            break
        span = _attribution(lines, i)
        if span:
            if _next_is_quoted(lines, i + span):
                i += span
                continue
            if _ATTRIBUTION_START.match(line):
                break
        kept.append(lines[i].rstrip())
        size += len(line) + 1
        i += 1
    return "\n".join(kept).strip()


def _log_unparseable(what: str, exc: Exception, size: int) -> None:
    # A RecursionError (MIME nested too deep for the email parser) is expected; its traceback is noise.
    log.warning(
        what,
        extra={"bytes": size, "error": repr(exc)[:200]},
        exc_info=not isinstance(exc, RecursionError),
    )


def _classify(raw: bytes, *, headers_only: bool) -> Inbound:
    if headers_only:
        message = _HeaderBlock(_header_block(raw))
    else:
        message = message_from_bytes(raw[:MAX_RAW_BYTES], policy=compat32)
    subject = _line(_decode_words(_header(message, "subject") or ""))
    from_name, from_address = _address(_header(message, "from"))
    when = _date(_header(message, "date"))
    base = {
        "message_id": _first(_message_ids(_header(message, "message-id"))),
        "in_reply_to": _ids_of(message, ("in-reply-to", "references")),
        "from_address": from_address,
        "from_name": from_name,
        "subject": subject,
        "date": when,
    }
    hint = _bounce_hint(message)
    base["bounce_hint"] = hint is not None
    if headers_only:
        if hint in ("report", "ndr") or (hint == "sender" and _BOUNCE_SUBJECT.match(subject)):
            return Inbound(kind=Kind.BOUNCE, **base)
        if _auto_reply(message, subject):
            return Inbound(kind=Kind.AUTO_REPLY, **base)
        return Inbound(kind=Kind.REPLY if base["in_reply_to"] else Kind.OTHER, **base)

    parts = _Parts(message)
    text = parts.text()
    new_text = strip_quoted(text)
    snippet = _snippet(new_text)
    if hint is not None or parts.delivery_status:
        report = _bounce(parts, text, subject, hint)
        if report is not None:
            kind, details = report
            return Inbound(kind=kind, snippet=_snippet(text if details else new_text), **base, **details)
    if _auto_reply(message, subject):
        return Inbound(
            kind=Kind.AUTO_REPLY,
            snippet=snippet,
            return_date=_return_date(subject + "\n" + new_text, when),
            **base,
        )
    return Inbound(kind=Kind.REPLY if base["in_reply_to"] else Kind.OTHER, snippet=snippet, **base)


# Headers -----------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_WHITESPACE = re.compile(r"\s+")
_CHARSET_NAME = re.compile(r"[A-Za-z0-9._:-]{1,40}")
_ID = re.compile(rf"<\s*([^<>\s]{{1,{_MAX_ID_CHARS}}})\s*>")
_ID_TOKEN = re.compile(rf"[^\s<>()\",;]{{3,{_MAX_ID_CHARS}}}")
_ADDRESS = re.compile(
    r"[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f-\x9f]{1,64}@[^\s@<>()\[\],;:\"\\\x00-\x1f\x7f-\x9f\u2028\u2029]{1,253}"
)


def _as_bytes(raw) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _header_block(raw: bytes) -> bytes:
    """The header block of `raw`: everything before the first empty line, with its line ending."""
    match = _BLANK_LINE.search(raw, 0, MAX_RAW_BYTES)
    return raw[: match.end()] if match else raw[:MAX_RAW_BYTES] + b"\n\n"


def _header(message, name: str) -> str | None:
    """The first `name` header of `message` (a Message or a `_HeaderBlock`), unfolded, 8-bit bytes
    read as UTF-8; encoded words stay."""
    index = message.__dict__.get("_first_headers")
    if index is None:  # built once per message: the checks ask for dozens of headers
        index = {}
        for key, value in message.raw_items():
            if isinstance(key, str):
                index.setdefault(key.lower(), value)
        message.__dict__["_first_headers"] = index
    value = index.get(name)
    if value is None or value.__class__ is _Unfolded:
        return value
    index[name] = unfolded = _Unfolded(_unfold(value))
    return unfolded


class _Unfolded(str):
    """A header value `_header` has unfolded already."""


class _HeaderBlock:
    """A header block read the way `message_from_bytes(..., policy=compat32)` reads it (bytes as
    ASCII with surrogate escapes, folded lines kept), without building a Message: the headers-only
    checks run on every message of an inbox, and only need header values. Lines that are not
    headers are skipped."""

    def __init__(self, block: bytes):
        text = block.decode("ascii", "surrogateescape")
        self._items = _HEADER_LINE.findall(text.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0])

    def raw_items(self):
        return iter(self._items)


# A header line and its continuation lines; the name is printable ASCII without a colon.
_HEADER_LINE = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.MULTILINE)


def _unfold(value) -> str:
    if not isinstance(value, str):
        value = str(value)
    value = value[:_MAX_HEADER_CHARS]
    if _ESCAPED_BYTES.search(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _FOLD.sub(" ", value).strip() if "\n" in value else value.strip()


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n[ \t]*")
_TOKEN_END = re.compile(r"[\s;(]")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # 8-bit bytes, as surrogate escapes


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; unknown charsets and broken encodings degrade to U+FFFD."""
    if "=?" not in value:
        return value
    return _ENCODED_WORD.sub(_decode_word, _BETWEEN_WORDS.sub(r"\1\2", value))


def _decode_word(match: re.Match) -> str:
    charset, encoding, text = match.group(1).split("*", 1)[0], match.group(2).upper(), match.group(3)
    try:
        if encoding == "B":
            data = _b64decode(text.encode("ascii", "replace"))
        else:
            data = quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)
    except ValueError:  # binascii.Error included
        return match.group(0)
    return _decode_bytes(data, charset)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or "").strip().strip("\"'").lower()
    if name in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")
    if _CHARSET_NAME.fullmatch(name):
        try:
            if codecs.lookup(name).name in ("ascii", "utf-8"):
                name = "utf-8"
            return data.decode(name, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    return data.decode("utf-8", "replace")


def _line(value: str) -> str:
    """One line of display text: controls and invisible format characters out, whitespace collapsed."""
    if value.isascii() and value.isprintable():  # most subjects and names: nothing to take out
        return " ".join(value.split())
    return _WHITESPACE.sub(" ", _CONTROL.sub(" ", _INVISIBLE.sub("", value))).strip()


def _spaces(value: str) -> str:
    return value.replace("\u00a0", " ").replace("\u202f", " ").replace("\t", " ")


def _token(value: str | None) -> str:
    """The first word of a structured header value, lower-cased: ``auto-replied (vacation)`` -> ``auto-replied``."""
    if not value:
        return ""
    return _TOKEN_END.split(value.strip(), maxsplit=1)[0].lower()


def _param(value: str | None, name: str) -> str | None:
    if not value:
        return None
    match = re.search(r";\s*" + name + r"\s*=\s*(?:\"([^\"]*)\"|([^\s;]+))", value, re.IGNORECASE)
    return (match.group(1) if match.group(1) is not None else match.group(2)) if match else None


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    ids = _ID.findall(value)
    if not ids:
        ids = [token for token in _ID_TOKEN.findall(value) if "@" in token]
    return [found.lower() for found in ids if not _CONTROL.search(found)][:_MAX_IDS]


def _ids_of(message: Message, names: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        for found in _message_ids(_header(message, name)):
            seen.setdefault(found)
    return tuple(seen)[:_MAX_IDS]


def _first(values) -> str | None:
    return next(iter(values), None)


def _address(value: str | None) -> tuple[str | None, str | None]:
    """(display name, lower-cased address) of the first mailbox in an address header."""
    if not value:
        return None, None
    simple = _SIMPLE_ADDRESS.fullmatch(value)
    if simple is not None:  # `Name <a@b>`, `"Name" <a@b>` or `a@b`: most mail, without parseaddr's cost
        name, address = simple.group(1) or simple.group(2) or "", simple.group(3) or simple.group(4)
    else:
        try:
            name, address = parseaddr(value)
        except (ValueError, TypeError, IndexError):
            name, address = "", ""
    address = address.strip().strip("<>").lower()
    if not _ADDRESS.fullmatch(address):
        address = _clean_address(value) or ""
    name = _line(_decode_words(name)) if name else ""
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    return (name[:200] or None), (address or None)


_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:(?:"([^"\\]*)"|([^"<>,;:@()\\\[\]]*?))\s*<([^<>\s()",;:\\]+@[^<>\s()",;:\\]+)>|([^<>\s()",;:\\]+@[^<>\s()",;:\\]+))\s*'
)


def _clean_address(value: str | None) -> str | None:
    """An address from a DSN field (``rfc822; <Bob@x.test>``) or free text, lower-cased."""
    if not value:
        return None
    if ";" in value:
        value = value.split(";", 1)[1]
    match = _ADDRESS.search(value.replace("<", " ").replace(">", " "))
    return match.group(0).lower() if match else None


def _date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    common = _COMMON_DATE.fullmatch(value)
    month = _MONTH_NUMBERS.get(common.group(2).lower()) if common is not None else None
    if month is not None:  # "Tue, 3 Mar 2026 09:00:00 +0100": most mail, without the email package
        day, _, year, hour, minute, second, sign, zone_h, zone_m = common.groups()
        offset = dt.timedelta(minutes=(int(zone_h) * 60 + int(zone_m)) * (-1 if sign == "-" else 1))
        with contextlib.suppress(ValueError, OverflowError):  # else as the email package reads it
            local = dt.datetime(int(year), month, int(day), int(hour), int(minute), int(second or 0))
            return (local - offset).replace(tzinfo=dt.UTC)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


_MONTH_NUMBERS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_COMMON_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+"
    r"([+-])(\d{2})(\d{2})(?:\s*\([^()]*\))?\s*"
)


# Bodies ------------------------------------------------------------------------------------------

_DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers")


class _Parts:
    """The parts of a message that classification reads, found by an iterative, bounded walk."""

    def __init__(self, message: Message):
        self.message = message
        self.plain: Message | None = None
        self.html: Message | None = None
        self.delivery_status: list[Message] = []
        self.returned: list[Message] = []
        stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
        count = 0
        while stack and count < _MAX_PARTS:
            part, depth, enclosed = stack.pop()
            count += 1
            ctype = _content_type(part)
            if ctype in _DELIVERY_STATUS and not enclosed:
                self.delivery_status.append(part)
                continue
            if ctype in _RETURNED and not enclosed:
                self.returned.append(part)
            if ctype.startswith("text/") and not enclosed and not _is_attachment(part):
                if ctype == "text/plain" and self.plain is None:
                    self.plain = part
                elif ctype == "text/html" and self.html is None:
                    self.html = part
            if depth < _MAX_DEPTH:
                inner = enclosed or ctype.startswith("message/")
                stack.extend((child, depth + 1, inner) for child in reversed(_children(part)))

    def text(self) -> str:
        """The readable body: the first text/plain part, else the first text/html part as text."""
        if self.plain is not None:
            text = _part_text(self.plain)
            if text.strip() or self.html is None:
                return text
        if self.html is not None:
            return _html_text(_part_text(self.html))
        return ""


def _children(part: Message) -> list[Message]:
    # Only a multipart's payload is read undecoded: compat32's get_payload() without decode=True
    # decodes 8-bit text with the declared charset, and raises for a charset name with a NUL in it.
    if not part.is_multipart():
        return []
    return [child for child in part.get_payload()[:_MAX_PARTS] if isinstance(child, Message)]


def _content_type(part: Message) -> str:
    value = _header(part, "content-type")
    if not value:
        return "text/plain"
    ctype = value.split(";", 1)[0].strip().lower()
    return ctype if re.fullmatch(r"[a-z0-9!#$&.+^_-]+/[a-z0-9!#$&.+^_-]+", ctype) else "text/plain"


def _is_attachment(part: Message) -> bool:
    return _token(_header(part, "content-disposition")) == "attachment"


def _part_text(part: Message) -> str:
    """The decoded text of a non-multipart part, at most `MAX_TEXT_BYTES` of it."""
    # get_payload() without decode=True would already have decoded 8-bit text with the declared
    # charset, or with ASCII when that charset is unknown, losing the bytes.
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError):
        data = None
    if not isinstance(data, bytes):
        return ""
    return _decode_bytes(data[:MAX_TEXT_BYTES], _param(_header(part, "content-type"), "charset"))


def _b64decode(data: bytes) -> bytes:
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data + b"=" * (-len(data) % 4)
    return binascii.a2b_base64(data)


def _snippet(text: str) -> str:
    text = _line(text)
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text[: SNIPPET_CHARS - 1]
    space = cut.rfind(" ")
    if space > SNIPPET_CHARS * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class _HtmlText(HTMLParser):
    """HTML to plain lines, leaving out quoted messages (blockquote, Gmail/Yahoo/Proton quote divs,
    Outlook's reply header and everything after it), signatures, styles and scripts."""

    BLOCK = _words(
        "address article blockquote br dd div dl dt footer h1 h2 h3 h4 h5 h6 header hr li ol p pre "
        "section table td th tr ul"
    )
    VOID = _words("area base br col embed hr img input link meta param source track wbr")
    SKIP = _words("blockquote head noscript script style template title")
    QUOTE_CLASSES = _words(
        "gmail_quote gmail_quote_container gmail_signature yahoo_quoted protonmail_quote moz-cite-prefix moz-signature"
    )
    SKIP_IDS = _words("signature x_signature")
    STOP_IDS = _words(
        "divrplyfwdmsg x_divrplyfwdmsg appendonsend x_appendonsend mail-editor-reference-message-container"
    )

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.stopped = False

    def handle_starttag(self, tag, attrs):
        self._start(tag, attrs, void=tag in self.VOID)

    def handle_startendtag(self, tag, attrs):
        self._start(tag, attrs, void=True)

    def _start(self, tag, attrs, *, void):
        if self.stopped:
            return
        if self.skip_depth:
            if tag == self.skip_tag and not void:
                self.skip_depth += 1
            return
        values = {name: (value or "").lower() for name, value in attrs}
        if values.get("id", "") in self.STOP_IDS:
            self.stopped = True
            return
        if (
            tag in self.SKIP
            or values.get("id", "") in self.SKIP_IDS
            or self.QUOTE_CLASSES.intersection(values.get("class", "").split())
        ):
            if not void:
                self.skip_tag, self.skip_depth = tag, 1
            return
        if tag in self.BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if self.stopped:
            return
        if self.skip_depth:
            if tag == self.skip_tag:
                self.skip_depth -= 1
            return
        if tag in self.BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data):
        if not (self.stopped or self.skip_depth):
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html[:MAX_TEXT_BYTES])
        parser.close()
    except Exception:  # html.parser still asserts on some malformed markup (<![if ...)
        text = unescape(re.sub(r"<[^>]*>", " ", re.sub(r"(?is)<(style|script|head)\b.*?</\1\s*>", " ", html)))
    else:
        text = "".join(parser.chunks)
    lines = (_spaces(line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Quoted text -------------------------------------------------------------------------------------

_ATTRIBUTION_START = re.compile(r"(?:On|Le|Am|El)\s")
_ATTRIBUTION = re.compile(
    r"(?:On\s(?=.{0,300}\d).{1,300}?\swrote"
    r"|Le\s(?=.{0,300}\d).{1,300}?\sa\s+écrit"
    r"|Am\s(?=.{0,300}\d).{1,300}?\sschrieb(?:\s.{1,300})?"
    r"|El\s(?=.{0,300}\d).{1,300}?\sescribió"
    r"|.{1,300}?\sschrieb\s+am\s.{1,300}"
    r")\s*:"
)
# An attribution without "On"/"Le"/"Am"/"El" ("Ada Lovelace wrote:") counts only above a quote.
_LOOSE_ATTRIBUTION = re.compile(r".{1,300}?\s(?:wrote|a\s+écrit|schrieb|escribió)\s*:")
_SEPARATOR = re.compile(
    r"-{2,}\s*(?:original message|message d['\u2019]origine|ursprüngliche nachricht|mensaje original|"
    r"forwarded message|message transféré|weitergeleitete nachricht|mensaje reenviado)\s*-{2,}"
    r"|_{10,}"
    r"|(?:begin forwarded message|anfang der weitergeleiteten (?:e-mail|nachricht)|début du message réexpédié|"
    r"inicio del mensaje reenviado)\s*:",
    re.IGNORECASE,
)
_MOBILE_SIGNATURE = re.compile(
    r"(?:sent from my|sent from (?:outlook|mail for windows|yahoo mail|gmail|proton ?mail|samsung)|"
    r"get outlook for|envoyé (?:de|depuis|à partir de) (?:mon|outlook|yahoo)|"
    r"von meinem \S+(?: \S+){0,3} gesendet|gesendet (?:von|vom|mit) (?:meinem|outlook|yahoo)|"
    r"enviado desde (?:mi|outlook|yahoo|correo))\b.{0,60}",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"\*?(?:From|De|Von)\s*:\*?\s*\S")
_HEADER_OTHER = re.compile(
    r"\*?(?:Sent|Date|To|Cc|Subject|Envoyé|À|A|Objet|Gesendet|Datum|An|Betreff|Enviado|Fecha|Para|Asunto)\s*:"
)


def _outlook_header(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(_spaces(lines[i]).strip()):
        return False
    following = (_spaces(line).strip() for line in lines[i + 1 : i + 5])
    return any(_HEADER_OTHER.match(line) for line in following)


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1-3) the attribution line starting at `i` spans, or 0."""
    first = _spaces(lines[i]).strip()
    if not first or len(first) > 300:
        return 0
    for span in (1, 2, 3):
        joined = " ".join(_spaces(line[:300]).strip() for line in lines[i : i + span])
        if _ATTRIBUTION.fullmatch(joined) or (span == 1 and _LOOSE_ATTRIBUTION.fullmatch(joined)):
            return span
        if i + span >= len(lines) or not _ATTRIBUTION_START.match(first):
            return 0
    return 0


def _next_is_quoted(lines: list[str], start: int) -> bool:
    for line in lines[start : start + 20]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


# Bounces -----------------------------------------------------------------------------------------

_BOUNCE_SUBJECT = re.compile(
    r"\s*(?:undeliverable|undelivered mail|not delivered|delivery status notification|"
    r"mail delivery (?:failed|failure|problem|system)|returned mail|failure notice|delivery failure|"
    r"message delivery failure|delivery has failed|delivery notification|delivery delayed|"
    r"delayed mail|warning: could not send|message not delivered|"
    r"non remis|non distribuable|remise impossible|échec de (?:la )?remise|"
    r"notification d['\u2019]état de (?:la )?(?:distribution|remise)|"
    r"unzustellbar|nicht zustellbar|unzustellbare|zustellung (?:fehlgeschlagen|verzögert)|"
    r"benachrichtigung zum (?:zustell|übermittlungs)status|"
    r"no se puede entregar|no entregado|imposible entregar|"
    r"notificación (?:del|de) estado (?:del envío|de (?:la )?entrega))",
    re.IGNORECASE,
)
_DAEMON_LOCAL = re.compile(r"(?:mailer[-_]?daemon|mail[-_]daemon|postmaster|microsoftexchange[0-9a-f]*)(?:[+=].*)?")
_DAEMON_NAMES = frozenset({"mail delivery system", "mail delivery subsystem", "mail delivery service", "mailer-daemon"})
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_SMTP_CODE = re.compile(
    r"(?:said|returned|response|reply|error|failed|rejected|antwortete|répondu|respuesta)\W{1,6}([45]\d\d)(?!\d)"
    r"|^\s*['\"]?([45]\d\d)[ -](?=\S)",
    re.IGNORECASE | re.MULTILINE,
)
_REPEATED_CODE = re.compile(r"\s[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?")
_FAILURE_PHRASE = re.compile(
    r"could not be delivered|couldn['\u2019]t be delivered|wasn['\u2019]t able to deliver|was not delivered|"
    r"undeliverable|delivery (?:has )?failed|delivery to the following recipient|permanent (?:error|failure)|"
    r"user unknown|unknown user|does not exist|address not found|no such user|mailbox unavailable|"
    r"recipient not found|message not delivered|konnte nicht zugestellt|nicht zugestellt werden|"
    r"n['\u2019]a pas pu être (?:remis|distribué)|impossible de remettre|no se (?:pudo|ha podido) entregar",
    re.IGNORECASE,
)
_DELAY_PHRASE = re.compile(
    r"delayed|not yet been delivered|will (?:keep|continue) (?:trying|to try)|still trying|will retry|"
    r"temporar(?:y|ily)|verzögert|retardé|retrasad",
    re.IGNORECASE,
)
_INLINE_HEADER = re.compile(
    r"^[ \t]*(?:>[ \t]?)*(message-id|in-reply-to|references|x-drumbeat-delivery-id)[ \t]*:[ \t]*(.*(?:\r?\n[ \t]+.*)*)",
    re.IGNORECASE | re.MULTILINE,
)


def _bounce_hint(message: Message) -> str | None:
    """Why the headers suggest a bounce: "report", "ndr", "sender" or "subject"; None when they do not."""
    ctype = _header(message, "content-type") or ""
    if ctype.split(";", 1)[0].strip().lower() == "multipart/report":
        report_type = (_param(ctype, "report-type") or "delivery-status").lower()
        if report_type in ("delivery-status", "global-delivery-status"):
            return "report"
    if (
        _header(message, "x-failed-recipients") is not None
        or _header(message, "x-ms-exchange-message-is-ndr") is not None
    ):
        return "ndr"
    name, address = _address(_header(message, "from"))
    if (address and _DAEMON_LOCAL.fullmatch(address.rsplit("@", 1)[0])) or (name or "").lower() in _DAEMON_NAMES:
        return "sender"
    if _BOUNCE_SUBJECT.match(_line(_decode_words(_header(message, "subject") or ""))):
        return "subject"
    return None


def _bounce(parts: _Parts, text: str, subject: str, hint: str | None) -> tuple[Kind, dict] | None:
    """(BOUNCE, its fields) for a failure report, (OTHER, {}) for a report of successful deliveries
    only, None when the message is no delivery report."""
    returned_ids, delivery_id = _returned(parts, text)
    report = _delivery_status(parts.delivery_status)
    if report is not None:
        if not report:
            return Kind.OTHER, {}
        return Kind.BOUNCE, {**report, "returned_message_ids": returned_ids, "returned_delivery_id": delivery_id}
    # No readable delivery-status part: a non-standard NDR, read from its text.
    readable = _before_returned_copy(text)
    status = _status_in(readable)
    code = _smtp_code(readable)
    failure = _FAILURE_PHRASE.search(readable) is not None
    delayed = _DELAY_PHRASE.search(readable) is not None or re.search(r"delay", subject, re.IGNORECASE)
    subject_says = _BOUNCE_SUBJECT.match(subject) is not None
    evidence = status is not None or code is not None or failure
    if not (
        hint in ("report", "ndr")
        or (hint == "sender" and (subject_says or evidence))
        or (hint == "subject" and evidence)
    ):
        return None
    if status:
        bounce_type = "hard" if status[0] == "5" else "soft"
    elif code:
        bounce_type = "hard" if code[0] == "5" else "soft"
    elif delayed and not re.search(r"permanent|fatal", readable, re.IGNORECASE):
        bounce_type = "soft"
    elif failure or subject_says:
        bounce_type = "hard"
    else:
        bounce_type = None
    return Kind.BOUNCE, {
        "bounce_type": bounce_type,
        "status": status,
        "diagnostic": _diagnostic_line(readable, status, code),
        "final_recipient": _recipient_in(readable, parts),
        "returned_message_ids": returned_ids,
        "returned_delivery_id": delivery_id,
    }


def _delivery_status(parts: list[Message]) -> dict | None:
    """Fields of the first failed (else delayed) recipient in RFC 3464 delivery-status parts; {} when
    every recipient was delivered, relayed or expanded; None when the parts name no recipient."""
    blocks = [block for part in parts for block in _dsn_blocks(part)]
    recipients = [b for b in blocks if b.keys() & {"final-recipient", "original-recipient", "action", "status"}]
    if not recipients:
        return None

    def action(block):
        return _token(block.get("action"))

    def status_class(block):
        match = _STATUS.search(block.get("status", ""))
        return match.group(1) if match else ""

    chosen = (
        next((b for b in recipients if action(b) == "failed"), None)
        or next((b for b in recipients if action(b) == "delayed"), None)
        or next((b for b in recipients if not action(b) and status_class(b) in ("4", "5")), None)
    )
    if chosen is None:
        return {}
    diagnostic = _line(chosen.get("diagnostic-code", ""))
    if ";" in diagnostic[:20]:
        diagnostic = diagnostic.split(";", 1)[1].strip()
    # Multi-line SMTP replies repeat their code on every line: "550-5.1.1 ... 550-5.1.1 ... 550 5.1.1 ...".
    diagnostic = diagnostic[:4] + _REPEATED_CODE.sub(" ", diagnostic[4:])
    status = _status_in(chosen.get("status", ""))
    detail = _status_in(diagnostic)
    if detail and (status is None or (status.endswith(".0.0") and detail[0] == status[0])):
        status = detail
    code = _smtp_code(diagnostic) if status is None else None
    if action(chosen) == "delayed":
        bounce_type = "soft"
    elif status:
        bounce_type = "hard" if status[0] == "5" else "soft"
    elif code:
        bounce_type = "hard" if code[0] == "5" else "soft"
    else:
        bounce_type = "hard"
    recipient = _clean_address(chosen.get("final-recipient")) or _clean_address(chosen.get("original-recipient"))
    return {
        "bounce_type": bounce_type,
        "status": status,
        "diagnostic": diagnostic[:_DIAGNOSTIC_CHARS] or None,
        "final_recipient": recipient,
    }


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status part, each as {lower-case name: first value}."""
    if not part.is_multipart():
        return _field_blocks(_part_text(part))
    blocks = []
    for block in _children(part):
        fields: dict[str, str] = {}
        for name, value in block.raw_items():
            fields.setdefault(str(name).lower(), _unfold(value))
        blocks.append(fields)
        # message/global-delivery-status is parsed as one message: its first block as headers, the rest as body.
        rest = _part_text(block)
        if rest.strip():
            blocks.extend(_field_blocks(rest))
    return blocks


def _field_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    name = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if fields:
                blocks.append(fields)
            fields, name = {}, None
        elif line[0] in " \t" and name:
            fields[name] = _line(fields[name] + " " + line)
        elif ":" in line:
            key, _, value = line.partition(":")
            name = key.strip().lower()
            if name in fields:
                name = None
            else:
                fields[name] = _line(value)
    if fields:
        blocks.append(fields)
    return blocks


def _returned(parts: _Parts, text: str) -> tuple[tuple[str, ...], str | None]:
    """Message-IDs (Message-ID, In-Reply-To, References) and our delivery id of the returned message."""
    for part in parts.returned:
        if part.is_multipart():
            inner = _first(_children(part))
            if inner is None:
                continue
        else:
            inner = message_from_bytes(_header_block(_part_text(part).encode("utf-8", "replace")), policy=compat32)
        ids = _ids_of(inner, ("message-id", "in-reply-to", "references"))
        delivery_id = _delivery_id(_header(inner, "x-drumbeat-delivery-id"))
        if ids or delivery_id:
            return ids, delivery_id
    # Non-standard NDRs quote the original headers inline, sometimes with "> ".
    found: dict[str, list[str]] = {}
    for match in _INLINE_HEADER.finditer(text):
        found.setdefault(match.group(1).lower(), []).append(_unfold(match.group(2)))
    seen: dict[str, None] = {}
    for name in ("message-id", "in-reply-to", "references"):
        for value in found.get(name, [])[:1]:
            for found_id in _message_ids(value):
                seen.setdefault(found_id)
    delivery_id = _delivery_id(_first(found.get("x-drumbeat-delivery-id", [])))
    return tuple(seen)[:_MAX_IDS], delivery_id


def _delivery_id(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(uuid.UUID(value.strip()[:64]))
    except ValueError:
        return None


_RETURNED_COPY = re.compile(
    r"^.{0,20}(?:below this line is a copy of the message|this is a copy of the message|"
    r"original message (?:headers|follows)|original message|message headers follow|"
    r"text of the (?:returned|original) message|returned message|"
    r"kopf der (?:ursprünglichen|originalen) nachricht|en-têtes du message d['\u2019]origine|"
    r"encabezados del mensaje original)",
    re.IGNORECASE | re.MULTILINE,
)


def _before_returned_copy(text: str) -> str:
    text = text[:MAX_TEXT_BYTES]
    match = _RETURNED_COPY.search(text)
    if match and match.start() > 0:
        return text[: match.start()]
    inline = _INLINE_HEADER.search(text)
    return text[: inline.start()] if inline else text


def _status_in(text: str) -> str | None:
    for match in _STATUS.finditer(text):
        if match.group(1) in "45":
            return ".".join(match.groups())
    return None


def _smtp_code(text: str) -> str | None:
    match = _SMTP_CODE.search(text)
    return (match.group(1) or match.group(2)) if match else None


def _diagnostic_line(text: str, status: str | None, code: str | None) -> str | None:
    for line in text.split("\n"):
        if (status and status in line) or (code and code in line):
            line = _line(line)
            start = line.find(code) if code and code in line else line.find(status) if status else -1
            quoted = re.search(r"['\"]([45]\d\d[^'\"]*)['\"]", line)
            if quoted:
                line = quoted.group(1)
            elif start > 0 and code and re.match(re.escape(code) + r"[ -]", line[start:]):
                line = line[start:]
            return line[:_DIAGNOSTIC_CHARS] or None
    return None


def _recipient_in(text: str, parts: _Parts) -> str | None:
    """The failed address named in an NDR's readable text; the From address and daemons left out."""
    _, sender = _address(_header(parts.message, "from"))
    failed = _header(parts.message, "x-failed-recipients")
    if failed and (address := _clean_address(failed)):
        return address
    for match in _ADDRESS.finditer(text.replace("<", " ").replace(">", " ")):
        address = match.group(0).strip(".,:;'\"").lower()
        local = address.rsplit("@", 1)[0]
        if address != sender and not _DAEMON_LOCAL.fullmatch(local) and "." in address.rsplit("@", 1)[-1]:
            return address
    return None


# Auto-replies ------------------------------------------------------------------------------------

# Subjects that alone mark an auto-reply: an out-of-office marker at the very start, so a human
# "Re: Automatic reply: ..." or a campaign about "absence management" is not caught.
_OOO_SUBJECT = re.compile(
    r"\s*(?:(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response|responder)|autoreply|out of (?:the )?office|"
    r"out-of-office|réponse automatique|message d['\u2019]absence|"
    r"absente? (?:du bureau|jusqu)|automatische antwort|abwesenheitsnotiz|abwesenheitsnachricht|abwesenheit|abwesend|"
    r"respuesta automática|respuesta automatica|fuera de (?:la )?oficina|ausente)\b"
    r"|(?:auto|absence|absent|ausencia|ooo|vacation|congés|urlaub|vacaciones)\s*:)",
    re.IGNORECASE,
)
# Anywhere in a subject, even after "Re:": counts together with a header that hints at automation.
_OOO_ANYWHERE = re.compile(
    r"automatic reply|auto[- ]?reply|autoresponse|out of (?:the )?office|out-of-office|réponse automatique|"
    r"absent(?:e)? du bureau|automatische antwort|abwesenheitsnotiz|respuesta automática|fuera de (?:la )?oficina",
    re.IGNORECASE,
)


def _auto_reply(message: Message, subject: str) -> bool:
    auto_submitted = _token(_header(message, "auto-submitted"))
    if auto_submitted and auto_submitted != "no":
        return True
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated", "x-auto-reply-from", "x-mail-autoreply"):
        value = _header(message, name)
        if value is not None and _token(value) not in ("no", "false", "0"):
            return True
    ctype = _header(message, "content-type") or ""
    report_type = (_param(ctype, "report-type") or "").lower()
    if ctype.lower().startswith("multipart/report") and report_type == "disposition-notification":
        return True  # a read receipt (RFC 8098) is a machine's answer, not a person's
    precedence = _token(_header(message, "precedence"))
    if precedence == "auto_reply":
        return True
    if _OOO_SUBJECT.match(subject):
        return True
    hinted = (
        precedence in ("bulk", "junk", "list")
        or _header(message, "x-auto-response-suppress") is not None
        or _header(message, "x-ms-exchange-inbox-rules-loop") is not None
        or (_header(message, "return-path") or "").strip() == "<>"
    )
    return hinted and _OOO_ANYWHERE.search(subject) is not None


_MONTHS = {
    **dict.fromkeys(("january", "jan", "janvier", "janv", "januar", "jänner", "enero", "ene"), 1),
    **dict.fromkeys(("february", "feb", "février", "fevrier", "févr", "fevr", "februar", "febrero"), 2),
    **dict.fromkeys(("march", "mar", "mars", "märz", "maerz", "mär", "marzo"), 3),
    **dict.fromkeys(("april", "apr", "avril", "avr", "abril", "abr"), 4),
    **dict.fromkeys(("may", "mai", "mayo"), 5),
    **dict.fromkeys(("june", "jun", "juin", "juni", "junio"), 6),
    **dict.fromkeys(("july", "jul", "juillet", "juil", "juli", "julio"), 7),
    **dict.fromkeys(("august", "aug", "août", "aout", "agosto", "ago"), 8),
    **dict.fromkeys(("september", "sep", "sept", "septembre", "septiembre", "setiembre"), 9),
    **dict.fromkeys(("october", "oct", "octobre", "oktober", "okt", "octubre"), 10),
    **dict.fromkeys(("november", "nov", "novembre", "noviembre"), 11),
    **dict.fromkeys(("december", "dec", "décembre", "decembre", "déc", "dezember", "dez", "diciembre", "dic"), 12),
}
_WEEKDAYS = {
    **dict.fromkeys(("monday", "lundi", "montag", "lunes"), 0),
    **dict.fromkeys(("tuesday", "mardi", "dienstag", "martes"), 1),
    **dict.fromkeys(("wednesday", "mercredi", "mittwoch", "miércoles", "miercoles"), 2),
    **dict.fromkeys(("thursday", "jeudi", "donnerstag", "jueves"), 3),
    **dict.fromkeys(("friday", "vendredi", "freitag", "viernes"), 4),
    **dict.fromkeys(("saturday", "samedi", "samstag", "sábado", "sabado"), 5),
    **dict.fromkeys(("sunday", "dimanche", "sonntag", "domingo"), 6),
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    r"(?<!\w)(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})(?!\d)"
    r"|(?<![\w.:/])(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})(?:(?P=sep)(?P<ny>\d{4}|\d{2})(?!\d)|(?P<dot>\.))?(?![\d:/])"
    rf"|(?<!\w)(?P<d>[0-3]?\d)(?:st|nd|rd|th|er|\.|º|°)?\s*(?:de\s+|of\s+)?(?P<m>{_MONTH})(?!\w)\.?"
    r"(?:,?\s*(?:de\s+)?(?P<y>\d{4})(?!\d))?"
    rf"|(?<!\w)(?P<m2>{_MONTH})(?!\w)\.?\s+(?P<d2>[0-3]?\d)(?:st|nd|rd|th)?(?!\w)(?:,?\s+(?P<y2>\d{{4}})(?!\d))?"
    rf"|(?<!\w)(?P<wd>{'|'.join(_WEEKDAYS)})(?!\w)",
    re.IGNORECASE,
)
_BACK = re.compile(
    r"(?<!\w)(?:back|return(?:ing|s)?|de retour|retour|reviendrai|à partir d[eu]|dès|zurück|wieder|ab|"
    r"de vuelta|regres\w*|volver\w*|a partir del?|reincorpor\w*)(?!\w)",
    re.IGNORECASE,
)
_UNTIL = re.compile(
    r"(?<!\w)(?:until|till|through|thru|jusqu['\u2019]?(?:au|à)|bis|hasta)(?!\w)"
    # The end of a range ("1 to 12 March", "du 2 au 9 mars", "del 2 al 9 de marzo") only right before the date.
    r"|(?<!\w)(?:to|au|al)\s{1,2}(?:the\s)?$",
    re.IGNORECASE,
)
_BACK_AFTER = re.compile(r"[ ,]{0,3}(?:\w+ ){0,3}(?:wieder|zurück|de retour|de vuelta|back)(?!\w)", re.IGNORECASE)
_ENGLISH = re.compile(r"(?<!\w)(?:back|return\w*|until|till|through|thru|to)(?!\w)", re.IGNORECASE)


def _return_date(text: str, when: dt.datetime | None) -> dt.date | None:
    """The end of the absence that an out-of-office text names: a date after a "back" word ("back on",
    "de retour le", "ab dem", "regreso el") wins over one after an "until" word ("until", "jusqu'au",
    "bis", "hasta"), which wins over one followed by a "back" word ("am 12.01. wieder da")."""
    text = _spaces(text[:_NEW_TEXT_CHARS])
    reference = when.date() if when else None
    matches = list(_DATE.finditer(text))
    best: tuple[int, int, dt.date] | None = None
    for index, match in enumerate(matches):
        following = matches[index + 1] if index + 1 < len(matches) else None
        if match.group("wd") and following and not following.group("wd") and following.start() - match.end() <= 25:
            continue  # "Monday, January 12": the date says it
        trigger = _trigger(text[max(0, match.start() - 60) : match.start()])
        if trigger is None and _BACK_AFTER.match(text, match.end()):
            trigger = (2, False)
        if trigger is None:
            continue
        rank, english = trigger
        found = _date_of(match, reference, english=english)
        if found is not None and (best is None or (rank, match.start()) < best[:2]):
            best = (rank, match.start(), found)
    return best[2] if best else None


def _trigger(window: str) -> tuple[int, bool] | None:
    """(0 for a "back" word, 1 for an "until" word; whether that word is English) when `window` ends
    with such a word and at most 40 characters of the same sentence."""
    found = None
    for rank, pattern in ((0, _BACK), (1, _UNTIL)):
        for match in pattern.finditer(window):
            tail = window[match.end() :]
            if len(tail) <= 40 and not re.search(r"[!?;\n]|\.(?:\s|$)", tail) and (found is None or rank < found[0]):
                found = (rank, _ENGLISH.fullmatch(match.group(0)) is not None)
    return found


def _date_of(match: re.Match, reference: dt.date | None, *, english: bool) -> dt.date | None:
    groups = match.groupdict()
    if groups["wd"]:
        weekday = _WEEKDAYS.get(groups["wd"].lower())
        if reference is None or weekday is None:
            return None
        return reference + dt.timedelta(days=(weekday - reference.weekday() - 1) % 7 + 1)
    if groups["iy"]:
        return _make_date(int(groups["iy"]), int(groups["im"]), int(groups["id"]))
    if groups["a"]:
        first, second = int(groups["a"]), int(groups["b"])
        year = _year(groups["ny"])
        if groups["sep"] == "." and year is None and not groups["dot"]:
            return None  # "10.30" is more often a time than a date
        options = [(second, first)]
        if groups["sep"] == "/" and english:
            options.append((first, second))  # 01/12 may be January 12 in American English
        candidates = [found for month, day in options if (found := _infer(year, month, day, reference))]
        upcoming = sorted(found for found in candidates if reference is not None and found >= reference)
        return upcoming[0] if upcoming else _first(candidates)
    month_name, day = (groups["m"], groups["d"]) if groups["m"] else (groups["m2"], groups["d2"])
    month = _MONTHS.get((month_name or "").lower())
    if month is None or day is None:
        return None
    return _infer(_year(groups["y"] or groups["y2"]), month, int(day), reference)


def _year(value: str | None) -> int | None:
    if not value:
        return None
    year = int(value)
    return year + 2000 if year < 100 else year


def _infer(year: int | None, month: int, day: int, reference: dt.date | None) -> dt.date | None:
    if year is not None:
        return _make_date(year, month, day)
    if reference is None:
        return None
    found = _make_date(reference.year, month, day)
    if found is not None and found < reference - dt.timedelta(days=30):
        found = _make_date(reference.year + 1, month, day)
    return found


def _make_date(year: int, month: int, day: int) -> dt.date | None:
    if not 1970 <= year <= 2200:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
