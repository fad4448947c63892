import email
import logging
import re
import smtplib
import time
from datetime import UTC, datetime
from email import policy
from email.header import Header

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.smtp_sink import Sink  # noqa: F401 (the fixtures come from the tests.smtp_sink plugin)
from webapp.engine import mailer
from webapp.engine.mailer import (
    AmbiguousSendError,
    HeaderInjection,
    InvalidAddress,
    MessageError,
    OutboxMessage,
    OutboxTransport,
    PermanentSendError,
    SmtpTransport,
    TransientSendError,
    TransportConfigError,
    build_message,
    make_message_id,
    parse_address,
    transport_from_config,
)

UNSUBSCRIBE = "https://drumbeat.test/u/InRva2VuIg.abc_DEF-1"
INJECTIONS = [
    "x\r\nBcc: e@x",
    "x\nBcc: e@x",
    "x\rBcc: e@x",
    "=?utf-8?q?x=0ABcc:_e@x?=",
    "x\x00y",
    "x\x85y",
    "x\u2028Bcc: e@x",
]


def message(**overrides) -> bytes:
    values = {
        "from_addr": ("Charles Babbage", "charles@drumbeat.test"),
        "to_addr": ("Ada Lovelace", "ada@example.com"),
        "subject": "Quick question, Ada",
        "text": "Hi Ada,\n\nHow are the engines?\n",
        "html": "<p>Hi Ada,</p>\n<p>How are the engines?</p>\n",
        "message_id": make_message_id("0b9f6c5e-1d2a-4c1e-9a57-3f1d2e4b5a6c", "drumbeat.test"),
        "unsubscribe_url": UNSUBSCRIBE,
        "date": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    }
    return build_message(**{**values, **overrides})


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and not line[0].isspace()]


class TestBuildMessage:
    def test_it_builds_a_multipart_alternative_message(self):
        parsed = parse(message())
        assert parsed.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
        assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hi Ada,\n\nHow are the engines?\n"
        assert "<p>Hi Ada,</p>" in parsed.get_body(("html",)).get_content()
        assert parsed["From"] == "Charles Babbage <charles@drumbeat.test>"
        assert parsed["To"] == "Ada Lovelace <ada@example.com>"
        assert parsed["Subject"] == "Quick question, Ada"
        assert b"\r\nDate: Mon, 02 Mar 2026 09:30:00 GMT\r\n" in message()
        assert parsed["MIME-Version"] == "1.0"

    def test_it_carries_one_click_unsubscribe_headers(self):
        data = message(unsubscribe_mailto="unsubscribe@drumbeat.test?subject=unsubscribe")
        parsed = parse(data)
        assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@drumbeat.test?subject=unsubscribe>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parse(message())["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"

    def test_a_bare_mailto_address_gets_its_scheme(self):
        parsed = parse(message(unsubscribe_mailto="unsubscribe@drumbeat.test"))
        assert parsed["List-Unsubscribe"].endswith("<mailto:unsubscribe@drumbeat.test>")

    def test_the_message_id_is_the_given_deterministic_one(self):
        message_id = make_message_id("0b9f6c5e-1d2a-4c1e-9a57-3f1d2e4b5a6c", "drumbeat.test")
        assert message_id == "<0b9f6c5e-1d2a-4c1e-9a57-3f1d2e4b5a6c@drumbeat.test>"
        assert make_message_id("0b9f6c5e-1d2a-4c1e-9a57-3f1d2e4b5a6c", "drumbeat.test") == message_id
        assert parse(message(message_id=message_id))["Message-ID"] == message_id

    def test_make_message_id_checks_its_parts(self):
        assert make_message_id(42, "Bücher.Example") == "<42@xn--bcher-kva.example>"
        for bad_id in ("a b", "a>b", "x\r\n", "", "a@b"):
            with pytest.raises(MessageError):
                make_message_id(bad_id, "drumbeat.test")
        for bad_domain in ("a b", "x@y", "", "-x.test", "a..b"):
            with pytest.raises(MessageError):
                make_message_id("1", bad_domain)

    def test_it_refuses_a_malformed_message_id(self):
        for bad in ("no-brackets@x", "<a@b>\r\nBcc: e@x", "<a b@c>", "<ab>"):
            with pytest.raises(MessageError, match="message_id"):
                message(message_id=bad)

    def test_a_message_without_html_is_plain_text(self):
        parsed = parse(message(html=None))
        assert parsed.get_content_type() == "text/plain"
        assert not parsed.is_multipart()
        assert parsed.get_content().replace("\r\n", "\n") == "Hi Ada,\n\nHow are the engines?\n"

    def test_unicode_subject_names_and_bodies_round_trip(self):
        data = message(
            from_addr=("Jürgen Größe", "j@drumbeat.test"),
            to_addr=("Zoë Ünïcode, Jr.", "zoe@bücher.example"),
            subject="Grüße aus Köln — 株式会社 🚀",
            text="Hallo Zoë 🚀",
            html="<p>Hallo Zoë 🚀</p>",
        )
        assert data.isascii()
        parsed = parse(data)
        assert parsed["Subject"] == "Grüße aus Köln — 株式会社 🚀"
        assert parsed["From"].addresses[0].display_name == "Jürgen Größe"
        assert parsed["To"].addresses[0].display_name == "Zoë Ünïcode, Jr."
        assert parsed["To"].addresses[0].addr_spec == "zoe@xn--bcher-kva.example"
        assert parsed.get_body(("plain",)).get_content() == "Hallo Zoë 🚀"
        assert parsed.get_body(("html",)).get_content() == "<p>Hallo Zoë 🚀</p>"

    def test_ascii_display_names_with_specials_are_quoted(self):
        parsed = parse(message(to_addr=('Lovelace, Ada "The Countess"', "ada@example.com")))
        assert parsed["To"].addresses[0].display_name == 'Lovelace, Ada "The Countess"'

    @pytest.mark.parametrize(
        "subject",
        ["word " * 190, "x" * 950, "Spaces   inside  and trailing ", "Grüße " * 100, "Bcc: e@x (harmless as text)"],
    )
    def test_long_and_odd_subjects_fold_within_line_limits_and_round_trip(self, subject):
        data = message(subject=subject)
        assert all(len(line) <= 998 for line in data.split(b"\r\n"))
        assert parse(data)["Subject"] == subject

    def test_every_line_is_crlf_terminated_and_short_enough(self):
        data = message(text="a" * 5000 + "\n.\nend\r\nmore\rlast", html="<p>" + "b" * 5000 + "</p>")
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")
        assert max(len(line) for line in data.split(b"\r\n")) <= 78
        text = parse(data).get_body(("plain",)).get_content()
        assert text == "a" * 5000 + "\r\n.\r\nend\r\nmore\r\nlast"

    @given(st.binary(max_size=40).map(lambda b: bytes(b"\r\n.a"[x % 4] for x in b)))
    @settings(max_examples=500, deadline=None)
    def test_line_endings_and_dot_stuffing_match_their_definition(self, data):
        crlf = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
        assert mailer._crlf(data) == crlf
        stuffed = re.sub(rb"(?m)^\.", b"..", crlf)
        stuffed += b"" if stuffed.endswith(b"\r\n") else b"\r\n"
        assert mailer._dot_stuffed(data) == stuffed + b".\r\n"

    @given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=90))
    @settings(max_examples=500, deadline=None)
    def test_a_short_ascii_subject_is_written_as_the_email_package_folds_it(self, subject):
        folded = Header(subject, "us-ascii", header_name="Subject").encode(linesep="\r\n", maxlinelen=78)
        assert mailer._encode_text("Subject", subject) == folded

    def test_a_lone_surrogate_in_a_body_does_not_break_the_build(self):
        assert parse(message(text="x\ud800y")).get_body(("plain",)).get_content() == "x?y"

    @pytest.mark.parametrize("payload", INJECTIONS)
    def test_it_refuses_header_injection_in_the_subject(self, payload):
        with pytest.raises(HeaderInjection, match="subject"):
            message(subject=f"Hi {payload}")

    @pytest.mark.parametrize("payload", INJECTIONS)
    @pytest.mark.parametrize("field", ["from_addr", "to_addr"])
    def test_it_refuses_header_injection_in_display_names(self, payload, field):
        with pytest.raises(HeaderInjection):
            message(**{field: (payload, "ada@example.com")})
        with pytest.raises(HeaderInjection):
            message(**{field: f"{payload} <ada@example.com>"})

    @pytest.mark.parametrize("payload", INJECTIONS)
    def test_it_refuses_header_injection_in_extra_headers(self, payload):
        with pytest.raises(HeaderInjection):
            message(headers={"X-Campaign": payload})

    def test_a_bcc_lookalike_subject_stays_a_subject(self):
        data = message(subject="Bcc: e@x", to_addr="Bcc: e@x <ada@example.com>")
        assert "bcc" not in header_names(data)
        assert not re.search(rb"(?im)^bcc:", data)
        assert parse(data)["Subject"] == "Bcc: e@x"

    def test_injection_through_a_rendered_subject_is_refused_before_any_bytes_exist(self):
        from webapp.engine.render import render_message

        for payload in INJECTIONS:
            rendered = render_message(
                "Hi {{ first_name }}", "x", {"first_name": payload, "unsubscribe_url": UNSUBSCRIBE}
            )
            with pytest.raises(HeaderInjection):
                message(subject=rendered.subject)

    def test_extra_headers_are_written_after_checks(self):
        parsed = parse(message(headers={"Reply-To": "charles@drumbeat.test", "X-Drumbeat-Delivery": "42"}))
        assert parsed["Reply-To"] == "charles@drumbeat.test"
        assert parsed["X-Drumbeat-Delivery"] == "42"

    @pytest.mark.parametrize(
        "name", ["Bcc", "BCC", "Subject", "From", "Message-ID", "List-Unsubscribe", "Content-Type"]
    )
    def test_extra_headers_cannot_replace_or_add_reserved_ones(self, name):
        with pytest.raises(MessageError, match="cannot be set"):
            message(headers={name: "x@example.com"})

    @pytest.mark.parametrize("name", ["X Space", "X:Colon", "X\r\nBcc", ""])
    def test_extra_header_names_must_be_valid(self, name):
        with pytest.raises(MessageError):
            message(headers={name: "x"})

    def test_extra_header_values_must_be_ascii(self):
        with pytest.raises(MessageError, match="ASCII"):
            message(headers={"X-Note": "Grüße"})

    @pytest.mark.parametrize(
        "url",
        [
            "javascript:alert(1)",
            "ftp://x/u",
            "https://x/u v",
            "https://x/<u>",
            "https://x/u,v",
            "/u/abc",
            "https://x/=?q",
        ],
    )
    def test_it_refuses_a_bad_unsubscribe_url(self, url):
        with pytest.raises(MessageError, match="unsubscribe_url"):
            message(unsubscribe_url=url)

    def test_it_refuses_a_bad_unsubscribe_mailto(self):
        for bad in ("not-an-address", "mailto:a@b.test?subject=<x>", "a@b.test\r\nBcc: e@x"):
            with pytest.raises(MessageError):
                message(unsubscribe_mailto=bad)

    def test_it_refuses_a_subject_over_998_characters(self):
        with pytest.raises(MessageError, match="998"):
            message(subject="x" * 999)

    def test_the_default_date_is_now(self):
        before = datetime.now(UTC).replace(microsecond=0)
        parsed = parse(message(date=None))
        assert before <= parsed["Date"].datetime <= datetime.now(UTC)


class TestParseAddress:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("ada@example.com", ("", "ada@example.com")),
            ("  ada@Example.COM ", ("", "ada@example.com")),
            ("Ada Lovelace <ada@example.com>", ("Ada Lovelace", "ada@example.com")),
            ('"Lovelace, Ada" <ada@example.com>', ("Lovelace, Ada", "ada@example.com")),
            ("<ada@example.com>", ("", "ada@example.com")),
            (("Zoë", "zoe@bücher.example"), ("Zoë", "zoe@xn--bcher-kva.example")),
            ((None, "outreach@localhost"), ("", "outreach@localhost")),
        ],
    )
    def test_it_splits_and_normalises(self, value, expected):
        assert parse_address(value) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@example.com",
            "zoë@example.com",
            "ada@exa mple.com",
            "a..b@example.com",
            "=?x?=@example.com",
            42,
        ],
    )
    def test_it_refuses_what_is_not_a_plain_address(self, value):
        with pytest.raises(MessageError):
            parse_address(value)


@pytest.fixture
def transport(smtp_server):
    with SmtpTransport("127.0.0.1", smtp_server.port, local_hostname="localhost", timeout=5) as smtp:
        yield smtp


def rcpt_reply(code_and_text: str) -> str:
    """A recipient address that makes the sink answer RCPT with `code_and_text`, e.g. "451-4.3.0_later"."""
    return f"reply{code_and_text}@example.com"


class TestSmtpTransport:
    def test_it_delivers_a_message(self, transport, sink):
        data = message()
        assert transport.send("bounces@drumbeat.test", ["ada@example.com"], data, message_id="<1@drumbeat.test>") == {}
        [(_, mail_from, rcpt_tos, content)] = sink.received
        assert (mail_from, rcpt_tos) == ("bounces@drumbeat.test", ["ada@example.com"])
        assert content.rstrip(b"\r\n") == data.rstrip(b"\r\n")
        assert parse(content)["Subject"] == "Quick question, Ada"

    def test_it_reuses_one_connection_for_many_messages(self, transport, sink):
        for number in range(25):
            transport.send("bounces@drumbeat.test", f"ada+{number}@example.com", message())
        assert len(sink.received) == 25
        assert len({peer for peer, *_ in sink.received}) == 1
        assert transport.connections_opened == 1
        assert transport.connected

    def test_it_opens_a_new_connection_after_the_per_connection_limit(self, smtp_server, sink):
        with SmtpTransport(
            "127.0.0.1", smtp_server.port, local_hostname="localhost", max_messages_per_connection=2
        ) as smtp:
            for _ in range(5):
                smtp.send("bounces@drumbeat.test", "ada@example.com", message())
            assert smtp.connections_opened == 3
        assert len({peer for peer, *_ in sink.received}) == 3

    def test_it_reconnects_when_the_server_closed_an_idle_connection(self, transport, sink):
        sink.close_after_data = True
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        sink.close_after_data = False
        time.sleep(0.3)
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert len(sink.received) == 2
        assert transport.connections_opened == 2

    def test_a_421_at_mail_from_on_a_reused_connection_reconnects(self, transport, sink):
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        sink.mail_reply = "421 4.3.2 closing"
        with pytest.raises(TransientSendError) as caught:
            transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert caught.value.code == 421
        assert transport.connections_opened == 2

    def test_451_at_rcpt_is_transient_and_the_connection_stays_usable(self, transport, sink):
        with pytest.raises(TransientSendError) as caught:
            transport.send("bounces@drumbeat.test", rcpt_reply("451-4.3.0_try_later"), message())
        assert (caught.value.code, caught.value.stage) == (451, "rcpt")
        assert "4.3.0" in caught.value.message
        assert not isinstance(caught.value, TransportConfigError)
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert len(sink.received) == 1
        assert transport.connections_opened == 1

    def test_550_at_rcpt_is_permanent_and_a_hard_bounce(self, transport, sink):
        with pytest.raises(PermanentSendError) as caught:
            transport.send("bounces@drumbeat.test", rcpt_reply("550-5.1.1_no_such_user"), message())
        assert (caught.value.code, caught.value.stage) == (550, "rcpt")
        assert caught.value.recipient_refused
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert len(sink.received) == 1

    def test_451_after_data_is_transient(self, transport, sink):
        sink.data_reply = "451 4.7.1 greylisted"
        with pytest.raises(TransientSendError) as caught:
            transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert (caught.value.code, caught.value.stage) == (451, "data")

    def test_554_after_data_is_permanent_but_not_a_recipient_bounce(self, transport, sink):
        sink.data_reply = "554 5.7.1 message content rejected"
        with pytest.raises(PermanentSendError) as caught:
            transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert (caught.value.code, caught.value.stage) == (554, "data")
        assert not caught.value.recipient_refused

    def test_a_refused_sender_is_permanent_at_mail_from(self, transport, sink):
        sink.mail_reply = "553 5.7.1 sender not allowed"
        with pytest.raises(PermanentSendError) as caught:
            transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert (caught.value.code, caught.value.stage) == (553, "mail")
        assert not caught.value.recipient_refused

    def test_a_partly_refused_recipient_list_is_reported_not_raised(self, transport, sink):
        refused = transport.send(
            "bounces@drumbeat.test", ["ada@example.com", rcpt_reply("550-5.1.1_unknown")], message()
        )
        assert list(refused.values()) == [(550, "5.1.1 unknown")]
        assert sink.received[0][2] == ["ada@example.com"]

    def test_all_recipients_refused_with_one_temporary_is_transient(self, transport):
        with pytest.raises(TransientSendError):
            transport.send(
                "bounces@drumbeat.test", [rcpt_reply("550-5.1.1_unknown"), rcpt_reply("452-4.2.2_full")], message()
            )

    def test_a_connection_dropped_after_data_is_ambiguous(self, transport, sink):
        sink.drop_after_data = True
        with pytest.raises(AmbiguousSendError) as caught:
            transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert caught.value.stage == "data"
        assert not transport.connected
        sink.drop_after_data = False
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        assert len(sink.received) == 1

    def test_a_timeout_waiting_for_the_final_reply_is_ambiguous(self, smtp_server, sink):
        sink.data_delay = 1.5
        smtp = SmtpTransport("127.0.0.1", smtp_server.port, local_hostname="localhost", timeout=0.5)
        with smtp, pytest.raises(AmbiguousSendError):
            smtp.send("bounces@drumbeat.test", "ada@example.com", message())

    def test_a_server_that_is_down_is_transient(self, free_port):
        smtp = SmtpTransport("127.0.0.1", free_port, local_hostname="localhost", timeout=2)
        with smtp, pytest.raises(TransientSendError) as caught:
            smtp.send("bounces@drumbeat.test", "ada@example.com", message())
        assert caught.value.stage == "connect"
        assert caught.value.code is None

    def test_starttls_that_the_server_does_not_offer_is_a_config_error(self, smtp_server):
        smtp = SmtpTransport("127.0.0.1", smtp_server.port, security="starttls", local_hostname="localhost")
        with smtp, pytest.raises(TransportConfigError, match="STARTTLS"):
            smtp.send("bounces@drumbeat.test", "ada@example.com", message())

    def test_message_bytes_are_dot_stuffed_and_line_endings_normalised(self, transport, sink):
        raw = b"Subject: smuggling\n\nline one\n.\nMAIL FROM:<evil@example.com>\r\n.\rline three\n..two dots\n"
        transport.send("bounces@drumbeat.test", "ada@example.com", raw)
        [(_, _, _, content)] = sink.received
        assert content == (
            b"Subject: smuggling\r\n\r\nline one\r\n.\r\nMAIL FROM:<evil@example.com>\r\n.\r\n"
            b"line three\r\n..two dots\r\n"
        )
        assert len(sink.received) == 1

    @pytest.mark.parametrize(
        ("sender", "recipients"),
        [
            ("bounces@drumbeat.test", ["ada@example.com\r\nRCPT TO:<evil@example.com>"]),
            ("bounces@drumbeat.test>\r\nRCPT TO:<evil@example.com", ["ada@example.com"]),
            ("bounces@drumbeat.test", []),
            ("bounces@drumbeat.test", ["zoë@example.com"]),
        ],
    )
    def test_bad_envelopes_are_refused_before_connecting(self, transport, sender, recipients):
        with pytest.raises(InvalidAddress):
            transport.send(sender, recipients, message())
        assert transport.connections_opened == 0

    def test_message_bytes_must_be_bytes(self, transport):
        with pytest.raises(TypeError):
            transport.send("bounces@drumbeat.test", "ada@example.com", "text")

    def test_the_null_sender_is_allowed(self, transport, sink):
        transport.send("", "ada@example.com", message())
        assert sink.received[0][1] == "<>"

    def test_the_envelope_addresses_go_out_as_checked(self, transport, sink):
        transport.send("O'Brien+Bounce@Drumbeat.TEST", ["a.b-c+d=e/f?g@Example.com"], message())
        [(_, mail_from, rcpt_tos, _)] = sink.received
        assert (mail_from, rcpt_tos) == ("O'Brien+Bounce@drumbeat.test", ["a.b-c+d=e/f?g@example.com"])

    @given(
        st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,5})?", fullmatch=True)
    )
    @settings(max_examples=300, deadline=None)
    def test_a_checked_address_needs_no_quoting_on_the_wire(self, local):
        # The transport sends MAIL FROM and RCPT TO as <address> itself; smtplib would parse and
        # quote it first, to the same result for every address that `_address` accepts.
        try:
            address = mailer._address(f"{local}@example.com")
        except InvalidAddress:
            assume(False)
        assert smtplib.quoteaddr(address) == f"<{address}>"

    def test_close_is_idempotent(self, transport):
        transport.send("bounces@drumbeat.test", "ada@example.com", message())
        transport.close()
        transport.close()
        assert not transport.connected

    def test_unknown_security_is_refused(self):
        with pytest.raises(ValueError, match="security"):
            SmtpTransport("localhost", 25, security="tls")


class TestSmtpAuthentication:
    PASSWORD = "s3cret-Pa55word!"

    @pytest.fixture
    def auth_server(self, sink, free_port):
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"drumbeat" and auth_data.password == self.PASSWORD.encode()
            # handled=False: aiosmtpd itself answers 535 on failure.
            return AuthResult(success=ok, handled=False)

        controller = Controller(
            sink, hostname="127.0.0.1", port=free_port, authenticator=authenticator, auth_require_tls=False
        )
        controller.start()
        yield controller
        controller.stop()

    def test_it_logs_in_and_sends(self, auth_server, sink, caplog):
        caplog.set_level(logging.DEBUG)
        with SmtpTransport(
            "127.0.0.1", auth_server.port, username="drumbeat", password=self.PASSWORD, local_hostname="localhost"
        ) as smtp:
            smtp.send("bounces@drumbeat.test", "ada@example.com", message())
            assert self.PASSWORD not in repr(smtp)
        assert len(sink.received) == 1
        assert self.PASSWORD not in caplog.text

    def test_wrong_credentials_are_a_config_error_that_never_shows_the_password(self, auth_server, caplog):
        caplog.set_level(logging.DEBUG)
        wrong = "wr0ng-Pa55word!"
        with (
            SmtpTransport(
                "127.0.0.1",
                auth_server.port,
                username="drumbeat",
                password=wrong,
                local_hostname="localhost",
                timeout=5,
            ) as smtp,
            pytest.raises(TransportConfigError) as caught,
        ):
            smtp.send("bounces@drumbeat.test", "ada@example.com", message())
        assert caught.value.stage == "auth"
        assert caught.value.code == 535
        assert isinstance(caught.value, TransientSendError)
        assert wrong not in str(caught.value)
        assert wrong not in caplog.text


class TestOutboxTransport:
    def test_it_appends_to_its_own_list_by_default(self):
        outbox = OutboxTransport()
        data = message()
        assert outbox.send("bounces@drumbeat.test", ["ada@example.com"], data, message_id="<1@drumbeat.test>") == {}
        assert list(outbox.messages) == [
            OutboxMessage("bounces@drumbeat.test", ("ada@example.com",), data, "<1@drumbeat.test>")
        ]
        assert outbox.stores_messages
        assert not SmtpTransport.stores_messages

    def test_its_own_list_is_bounded(self):
        outbox = OutboxTransport(keep=3)
        for number in range(5):
            outbox.send("bounces@drumbeat.test", "ada@example.com", message(), message_id=f"<{number}@drumbeat.test>")
        assert [stored.message_id for stored in outbox.messages] == [f"<{n}@drumbeat.test>" for n in (2, 3, 4)]

    def test_it_appends_to_a_given_list(self):
        stored: list = []
        OutboxTransport(stored).send("bounces@drumbeat.test", "ada@example.com", message(), message_id=None)
        assert stored[0].recipients == ("ada@example.com",)

    def test_it_calls_a_callback(self):
        seen = []
        outbox = OutboxTransport(seen.append)
        outbox.send("bounces@drumbeat.test", "ada@example.com", message(), message_id="<2@drumbeat.test>")
        assert outbox.messages is None
        assert seen[0].message_id == "<2@drumbeat.test>"

    def test_it_checks_arguments_like_smtp(self):
        outbox = OutboxTransport()
        with pytest.raises(InvalidAddress):
            outbox.send("bounces@drumbeat.test", "ada@example.com\r\nRCPT TO:<e@x>", message())
        with pytest.raises(TypeError):
            outbox.send("bounces@drumbeat.test", "ada@example.com", "not bytes")
        with pytest.raises(TypeError):
            OutboxTransport(sink=42)
        assert list(outbox.messages) == []


class TestTransportFromConfig:
    def test_outbox_is_the_default(self):
        assert isinstance(transport_from_config({}), OutboxTransport)
        stored: list = []
        transport = transport_from_config({"MAIL_TRANSPORT": "outbox"}, outbox=stored)
        transport.send("a@drumbeat.test", "b@example.com", b"Subject: x\r\n\r\nx\r\n")
        assert len(stored) == 1

    def test_smtp_reads_every_setting(self):
        transport = transport_from_config(
            {
                "MAIL_TRANSPORT": "SMTP",
                "SMTP_HOST": "mail.example.com",
                "SMTP_PORT": "587",
                "SMTP_SECURITY": "starttls",
                "SMTP_USERNAME": "drumbeat",
                "SMTP_PASSWORD": "hunter2-secret",
                "SMTP_TIMEOUT": "12.5",
            }
        )
        assert isinstance(transport, SmtpTransport)
        assert (transport.host, transport.port, transport.security, transport.username, transport.timeout) == (
            "mail.example.com",
            587,
            "starttls",
            "drumbeat",
            12.5,
        )
        assert "hunter2-secret" not in repr(transport)
        assert not transport.connected

    def test_the_app_config_defaults_build_a_transport(self):
        from webapp.config import TestConfig

        config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
        assert isinstance(transport_from_config(config), OutboxTransport)
        assert isinstance(transport_from_config({**config, "MAIL_TRANSPORT": "smtp"}), SmtpTransport)

    def test_unknown_values_are_refused(self):
        with pytest.raises(ValueError, match="MAIL_TRANSPORT"):
            transport_from_config({"MAIL_TRANSPORT": "sendgrid"})
        with pytest.raises(ValueError, match="security"):
            transport_from_config({"MAIL_TRANSPORT": "smtp", "SMTP_SECURITY": "tls"})


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, and a client context that trusts it."""
    import ipaddress
    import ssl
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


class TestSmtpTls:
    def test_starttls_upgrades_the_connection_before_sending(self, sink, free_port, certificate):
        server_context, client_context = certificate
        controller = Controller(
            sink, hostname="127.0.0.1", port=free_port, tls_context=server_context, require_starttls=True
        )
        controller.start()
        try:
            with SmtpTransport(
                "127.0.0.1", free_port, security="starttls", ssl_context=client_context, local_hostname="localhost"
            ) as smtp:
                smtp.send("bounces@drumbeat.test", "ada@example.com", message())
            plain = SmtpTransport("127.0.0.1", free_port, local_hostname="localhost", timeout=5)
            with plain, pytest.raises(TransportConfigError) as caught:
                plain.send("bounces@drumbeat.test", "ada@example.com", message())
            assert caught.value.code == 530
        finally:
            controller.stop()
        assert len(sink.received) == 1

    def test_implicit_tls(self, sink, free_port, certificate):
        server_context, client_context = certificate
        controller = Controller(sink, hostname="127.0.0.1", port=free_port, ssl_context=server_context)
        controller.start()
        try:
            with SmtpTransport(
                "127.0.0.1", free_port, security="ssl", ssl_context=client_context, local_hostname="localhost"
            ) as smtp:
                smtp.send("bounces@drumbeat.test", "ada@example.com", message())
        finally:
            controller.stop()
        assert len(sink.received) == 1

    def test_an_untrusted_certificate_is_a_config_error(self, sink, free_port, certificate):
        server_context, _ = certificate
        controller = Controller(sink, hostname="127.0.0.1", port=free_port, tls_context=server_context)
        controller.start()
        try:
            smtp = SmtpTransport("127.0.0.1", free_port, security="starttls", local_hostname="localhost", timeout=5)
            with smtp, pytest.raises(TransportConfigError, match="certificate"):
                smtp.send("bounces@drumbeat.test", "ada@example.com", message())
        finally:
            controller.stop()
        assert sink.received == []
