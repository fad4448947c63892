"""webapp.engine.imap against a real Dovecot (the tests.imap_server plugin), plus fake servers for failures."""

import contextlib
import email
import socket
import threading

import pytest

from tests.imap_server import ImapUser, unused_port
from webapp.engine.imap import (
    ImapError,
    ImapReader,
    ImapSettings,
    _parse_fetch,
    check,
    encode_modified_utf7,
)

PORTS = {"none": "port", "starttls": "port", "ssl": "tls_port"}


def settings_for(user: ImapUser, security: str = "none", **overrides) -> ImapSettings:
    values = {
        "host": user.host,
        "port": getattr(user, PORTS[security]),
        "security": security,
        "username": user.username,
        "password": user.password,
        "timeout": 5.0,
    }
    return ImapSettings(**{**values, **overrides})


def reader_for(user: ImapUser, security: str = "none", **overrides) -> ImapReader:
    return ImapReader(settings_for(user, security, **overrides), ssl_context=user.ssl_context)


def message(subject: str, body: str = "Sounds good, let's talk Tuesday.\n") -> bytes:
    return (
        f"From: Ada Lovelace <ada@example.com>\r\nTo: charles@drumbeat.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\n{body}"
    ).encode()


def subjects(fetched) -> list[str]:
    return [email.message_from_bytes(f.headers)["Subject"] for f in fetched]


@contextlib.contextmanager
def tcp_server(greeting: bytes | None, capabilities: bytes | None = None):
    """A listener on 127.0.0.1 that sends `greeting` (if any) on each connection. With `capabilities`
    it answers CAPABILITY with them and every other command with BAD; without, it never speaks again."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    held = []

    def answer(conn):
        with contextlib.suppress(OSError), conn.makefile("rb") as lines:
            for line in lines:
                tag, _, command = line.strip().partition(b" ")
                if command.upper() == b"CAPABILITY":
                    conn.sendall(b"* CAPABILITY " + capabilities + b"\r\n" + tag + b" OK done\r\n")
                else:
                    conn.sendall(tag + b" BAD not here\r\n")

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if greeting is not None:
                conn.sendall(greeting)
            if capabilities is not None:
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def error_from(settings: ImapSettings, ssl_context=None) -> ImapError:
    with pytest.raises(ImapError) as info:
        check(settings, ssl_context=ssl_context)
    return info.value


# -- reading -------------------------------------------------------------------------------------


def test_new_messages_are_read_incrementally_by_uid(mailbox):
    for n in (1, 2, 3):
        mailbox.append(message(f"first batch {n}"))
    with reader_for(mailbox) as reader:
        first = reader.headers_since(0)
    assert subjects(first) == ["first batch 1", "first batch 2", "first batch 3"]
    assert [f.uid for f in first] == mailbox.uids()

    new_uids = [mailbox.append(message(f"second batch {n}")) for n in (1, 2)]
    with reader_for(mailbox) as reader:
        second = reader.headers_since(first[-1].uid)
    assert [f.uid for f in second] == new_uids
    assert subjects(second) == ["second batch 1", "second batch 2"]


def test_nothing_is_new_when_the_last_uid_is_the_newest_even_though_star_names_the_last_message(mailbox):
    last = [mailbox.append(message(f"m{n}")) for n in range(2)][-1]
    with reader_for(mailbox) as reader:
        assert reader.headers_since(last) == []
        assert reader.headers_since(last + 100) == []


def test_an_empty_folder_has_no_new_messages(mailbox):
    with reader_for(mailbox) as reader:
        assert reader.headers_since(0) == []


def test_the_limit_returns_the_oldest_new_messages_first(mailbox):
    uids = [mailbox.append(message(f"m{n}")) for n in range(5)]
    with reader_for(mailbox) as reader:
        assert [f.uid for f in reader.headers_since(0, limit=2)] == uids[:2]
        assert [f.uid for f in reader.headers_since(uids[1], limit=2)] == uids[2:4]


def test_headers_come_without_the_body_with_the_full_size_and_leave_messages_unseen(mailbox):
    raw = message("Re: quick question", body="Yes please.\r\n" * 50)
    uid = mailbox.append(raw)
    with reader_for(mailbox) as reader:
        (fetched,) = reader.headers_since(0)
    assert fetched.uid == uid
    assert fetched.headers == raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert b"Yes please" not in fetched.headers
    assert fetched.size == len(raw)
    assert "\\Seen" not in mailbox.flags(uid)


def test_bodies_are_fetched_whole_and_leave_the_messages_unseen(mailbox):
    raws = [message("Re: pricing", body="What does the pro plan cost?\r\n"), message("Re: demo", body="Tuesday?\r\n")]
    uids = [mailbox.append(raw) for raw in raws]
    with reader_for(mailbox) as reader:
        sizes = {f.uid: f.size for f in reader.headers(uids)}
        assert reader.bodies(sizes) == dict(zip(uids, raws, strict=True))
    assert all("\\Seen" not in mailbox.flags(uid) for uid in uids)


def test_bodies_come_in_chunks_of_at_most_the_chunk_size(mailbox):
    raws = [message(f"n{n}", body=f"{n}" * 3000 + "\r\n") for n in range(5)]
    uids = [mailbox.append(raw) for raw in raws]
    with reader_for(mailbox) as reader:
        sizes = {f.uid: f.size for f in reader.headers(uids)}
        commands = []
        send = reader._conn.uid
        reader._conn.uid = lambda *args: commands.append(args) or send(*args)
        assert reader.bodies(sizes, chunk_bytes=2 * max(sizes.values())) == dict(zip(uids, raws, strict=True))
    assert len(commands) == 3  # 2 + 2 + 1 messages


def test_a_message_already_seen_stays_seen(mailbox):
    uid = mailbox.append(message("read on the phone"), flags=("\\Seen",))
    with reader_for(mailbox) as reader:
        (fetched,) = reader.headers_since(0)
        reader.bodies({uid: fetched.size})
    assert "\\Seen" in mailbox.flags(uid)


def test_a_body_larger_than_the_limit_is_not_fetched(mailbox):
    raw = message("big attachment", body="x" * 2000 + "\r\n")
    uid = mailbox.append(raw)
    with reader_for(mailbox) as reader:
        assert reader.bodies({uid: len(raw)}, max_bytes=len(raw) - 1) == {}
        assert reader.bodies({uid: len(raw)}, max_bytes=len(raw)) == {uid: raw}


def test_only_the_asked_header_fields_are_fetched(mailbox):
    raw = message("Re: quick question", body="Yes please.\r\n")
    uid = mailbox.append(raw)
    with reader_for(mailbox) as reader:
        (fetched,) = reader.headers([uid], fields=("subject", "message-id"))
        with pytest.raises(ValueError):
            reader.headers([uid], fields=("subject)] BODY[",))
    lines = [line for line in fetched.headers.split(b"\r\n") if line]
    assert sorted(line.split(b":")[0].lower() for line in lines) == [b"message-id", b"subject"]
    assert b"Subject: Re: quick question" in lines
    assert fetched.size == len(raw)


def test_the_beginnings_of_several_messages_come_in_one_fetch_and_leave_them_unseen(mailbox):
    short = message("short", body="Just a line.\r\n")
    long = message("long", body="y" * 5000 + "\r\n")
    uids = [mailbox.append(short), mailbox.append(long)]
    with reader_for(mailbox) as reader:
        found = reader.beginnings([*uids, uids[-1] + 1], max_bytes=1000)
    assert found == {uids[0]: short, uids[1]: long[:1000]}  # the missing UID is left out
    assert all("\\Seen" not in mailbox.flags(uid) for uid in uids)


def test_the_body_of_a_message_that_does_not_exist_is_left_out(mailbox):
    uid = mailbox.append(message("only one"))
    with reader_for(mailbox) as reader:
        assert reader.bodies({uid + 1: 100}) == {}


def test_uidvalidity_is_stable_across_connections(mailbox):
    mailbox.append(message("hello"))
    with reader_for(mailbox) as reader:
        first = reader.uidvalidity()
    with reader_for(mailbox) as reader:
        assert reader.uidvalidity() == first > 0


def test_uidvalidity_changes_when_the_folder_is_deleted_and_recreated(mailbox):
    mailbox.create("Replies")
    mailbox.append(message("before"), folder="Replies")
    with reader_for(mailbox, folder="Replies") as reader:
        before = reader.uidvalidity()
    mailbox.delete("Replies")
    mailbox.create("Replies")
    uid = mailbox.append(message("after"), folder="Replies")
    with reader_for(mailbox, folder="Replies") as reader:
        assert reader.uidvalidity() != before
        assert [f.uid for f in reader.headers_since(0)] == [uid]


def test_a_folder_with_a_non_ascii_name_is_read(mailbox):
    mailbox.create(encode_modified_utf7("Réponses & suivis"))
    mailbox.append(message("in the folder"), folder=encode_modified_utf7("Réponses & suivis"))
    with reader_for(mailbox, folder="Réponses & suivis") as reader:
        assert subjects(reader.headers_since(0)) == ["in the folder"]


def test_folder_names_are_encoded_in_modified_utf7():
    assert encode_modified_utf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"  # RFC 3501 5.1.3
    assert encode_modified_utf7("Réponses & suivis") == "R&AOk-ponses &- suivis"
    assert encode_modified_utf7("INBOX") == "INBOX"


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_a_mailbox_is_read_over_plain_imap_starttls_and_implicit_tls(mailbox, security):
    uid = mailbox.append(message(f"over {security}"))
    check(settings_for(mailbox, security), ssl_context=mailbox.ssl_context)
    with reader_for(mailbox, security) as reader:
        assert [f.uid for f in reader.headers_since(0)] == [uid]


def test_a_non_ascii_password_logs_in_with_authenticate_plain(make_imap_user):
    user = make_imap_user(password="pässwörd-ünïcode")
    check(settings_for(user, "ssl"), ssl_context=user.ssl_context)


def test_a_reader_that_is_not_open_refuses_to_read(mailbox):
    with pytest.raises(RuntimeError, match="not open"):
        reader_for(mailbox).headers_since(0)


# -- failures ------------------------------------------------------------------------------------


def test_a_wrong_password_is_an_authentication_failure_that_never_shows_the_password(mailbox):
    settings = settings_for(mailbox, password="Tr0ub4dor&3-wrong")
    error = error_from(settings)
    assert error.reason == "authentication failed"
    assert "Tr0ub4dor" not in str(error) and "Tr0ub4dor" not in repr(error)
    assert "Tr0ub4dor" not in repr(settings) and mailbox.password not in repr(settings_for(mailbox))


def test_a_closed_port_is_could_not_connect(mailbox):
    error = error_from(settings_for(mailbox, port=unused_port()))
    assert error.reason == "could not connect"
    assert mailbox.password not in str(error)


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_a_server_that_accepts_but_never_answers_times_out(mailbox, security):
    with tcp_server(greeting=None) as port:
        error = error_from(settings_for(mailbox, security, port=port, timeout=0.3), mailbox.ssl_context)
    assert error.reason == "timed out"
    assert "0.3 s" in str(error)


def test_a_server_that_does_not_speak_imap_is_a_protocol_error(mailbox):
    with tcp_server(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        error = error_from(settings_for(mailbox, port=port))
    assert error.reason == "protocol error"


def test_starttls_that_the_server_does_not_offer_is_a_tls_failure(mailbox):
    with tcp_server(greeting=b"* OK fake ready\r\n", capabilities=b"IMAP4rev1 AUTH=PLAIN") as port:
        error = error_from(settings_for(mailbox, "starttls", port=port))
    assert error.reason == "TLS handshake failed"
    assert "STARTTLS" in str(error)


def test_tls_against_the_plain_port_is_a_tls_failure(mailbox):
    error = error_from(settings_for(mailbox, "ssl", port=mailbox.port), mailbox.ssl_context)
    assert error.reason == "TLS handshake failed"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_a_tls_failure_by_default(mailbox, security):
    error = error_from(settings_for(mailbox, security))  # the default context does not trust the test CA
    assert error.reason == "TLS handshake failed"
    assert "certificate" in str(error)


def test_an_unknown_folder_is_folder_not_found(mailbox):
    error = error_from(settings_for(mailbox, folder="No Such Folder"))
    assert error.reason == "folder not found"
    assert "No Such Folder" in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [("security", "tls"), ("port", 0), ("timeout", 0), ("folder", "IN\r\nBOX"), ("password", "a\r\nb")],
)
def test_settings_are_validated(field, value):
    values = {"host": "imap.example.com", "port": 993, "security": "ssl", "username": "u", "password": "p"}
    with pytest.raises(ValueError):
        ImapSettings(**{**values, field: value})


def test_fetch_responses_are_parsed_whatever_the_order_of_their_items():
    data = [
        (b"1 (BODY[HEADER] {9}", b"Subject:\r\n"),
        b" UID 7 RFC822.SIZE 120)",
        b"2 (UID 8 FLAGS (\\Seen))",  # an unsolicited flag update
        (b"3 (UID 9 RFC822.SIZE 30 BODY[HEADER] {4}", b"X:\r\n"),
        b")",
        b'4 (UID 10 RFC822.SIZE 0 BODY[HEADER] "")',
    ]
    assert _parse_fetch(data) == [
        (7, {b"UID": 7, b"RFC822.SIZE": 120}, b"Subject:\r\n"),
        (8, {b"UID": 8}, None),
        (9, {b"UID": 9, b"RFC822.SIZE": 30}, b"X:\r\n"),
        (10, {b"UID": 10, b"RFC822.SIZE": 0}, None),
    ]
    assert _parse_fetch([None]) == []
