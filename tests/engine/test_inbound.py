"""engine/inbound: classifying received mail. The .eml fixtures are in tests/engine/mail/."""

import contextlib
import dataclasses
import datetime as dt
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.engine.inbound import (
    HEADER_FIELDS,
    SNIPPET_CHARS,
    Inbound,
    Kind,
    classify,
    looks_like_bounce,
    strip_quoted,
)

MAIL = Path(__file__).parent / "mail"
FIXTURES = sorted(path.name for path in MAIL.glob("*.eml"))
OURS = "7f3e2b0c9a4d4e51b6a8c2d1e0f9a8b7@acme.test"


def load(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def header_block(raw: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0] + b"\n\n"


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def message(headers: str, body: str = "") -> bytes:
    return (headers.strip() + "\n\n" + body).encode()


REPLIES = {
    "reply_gmail_en.eml": {
        "message_id": "cak7fj+z3sqd1q9ybn=hvx0_mpq8lw@mail.gmail.com",
        "in_reply_to": (OURS,),
        "from_address": "bob.stone@globex.test",
        "from_name": "Bob Stone",
        "subject": "Re: Quick question about Globex's SDR team",
        "date": utc(2026, 3, 4, 14, 12, 29),
        "snippet": "Hi Ada, Thanks for reaching out. Yes, we are evaluating tools for this right now — could you do a "
        "20-minute call on Thursday afternoon? Bob",
    },
    "reply_outlook_en.eml": {
        "in_reply_to": ("0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d@acme.test", "1c2d3e4f5a6b4c7d8e9f0a1b2c3d4e5f@acme.test"),
        "from_address": "carol@initech.test",
        "subject": "RE: Following up: Initech's outbound",
        "snippet": "Hi Ada, Not the right time for us - we signed with another vendor last month. Please check back "
        "in Q3. Regards, Carol Diaz Head of Sales Operations | Initech",
    },
    "reply_outlook_fr.eml": {
        "in_reply_to": ("5b6c7d8e9f0a4b1c8d2e3f4a5b6c7d8e@acme.test",),
        "from_name": "Claire Martin",
        "subject": "RE : Une question rapide à propos de Lumière",
        "date": utc(2026, 3, 4, 8, 41, 18),
        "snippet": "Bonjour Ada, Merci pour votre message. Oui, le sujet nous intéresse : pouvez-vous m'envoyer une "
        "présentation avant notre échange de vendredi ? Bien cordialement, Claire Martin",
    },
    "reply_apple_de.eml": {
        "message_id": "4e1f0c2a-9b7d-4f3e-a8c6-2d5b1e9f7a30@brauhaus.test",
        "in_reply_to": ("9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a@acme.test",),
        "subject": "Re: Kurze Frage zu Ihrem Vertriebsteam",
        "snippet": "Hallo Ada, gerne \u2013 nächste Woche Dienstag um 14 Uhr passt mir gut. Schicken Sie mir "
        "einfach eine Einladung. Viele Grüße Jonas",
    },
    "reply_gmail_es.eml": {
        "from_name": "Lucía Fernández",
        "subject": "Re: ¿Hablamos de prospección?",
        "snippet": "Hola Ada: Me interesa, pero ahora mismo estamos cerrando el trimestre. ¿Podemos hablar la semana "
        "que viene? Un saludo, Lucía",
    },
    "reply_owa_html_only.eml": {
        "from_address": "dana@umbrella.test",
        "snippet": "Please remove me from your list. We're not interested & never will be.",
    },
    "reply_inline_thunderbird.eml": {"snippet": "Four, soon six. HubSpot."},
    "reply_with_forwarded_message.eml": {
        "in_reply_to": (OURS,),
        "snippet": "Looping in our postmaster's note below: your first email bounced off our old address.",
    },
    "broken_charset.eml": {
        "message_id": "broken.charset@qonos.test",
        "in_reply_to": (OURS,),
        "from_address": "worf@qonos.test",
        "subject": "Re: café \ufffdt\ufffd ok",
        "date": None,
        "snippet": "Qapla'! café and \ufffdt\ufffd \ufffd\ufffd in one body.",
    },
    "broken_truncated_multipart.eml": {
        "message_id": "a@b",
        "in_reply_to": ("3e4f5a6b7c8d4e9fa0b1c2d3e4f5a6b7@acme.test",),
        "subject": "Hello Bcc: victim@example.test",
        "snippet": "Sounds good, let's talk next week. This part",
    },
}

AUTO_REPLIES = {
    "ooo_gmail_en.eml": {
        "in_reply_to": ("a1b2c3d4e5f64a7b8c9d0e1f2a3b4c5d@acme.test",),
        "subject": "Away until January 12",
        "return_date": dt.date(2026, 1, 12),
    },
    "ooo_m365_en.eml": {
        "subject": "Automatic reply: Following up: Initech's outbound",
        "return_date": None,
        "snippet": "I am currently out of the office with limited access to email.",
    },
    "ooo_m365_fr.eml": {
        "subject": "Réponse automatique : Une question rapide",
        "return_date": dt.date(2026, 1, 13),
    },
    "ooo_de.eml": {"return_date": dt.date(2026, 1, 12)},
    "ooo_es_subject_only.eml": {"in_reply_to": (), "return_date": dt.date(2026, 3, 16)},
}

BOUNCES = {
    "dsn_postfix_user_unknown.eml": {
        "bounce_type": "hard",
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 <bob@globex.test>: Recipient address rejected: User unknown in virtual mailbox table",
        "final_recipient": "bob@globex.test",
        "returned_message_ids": (OURS,),
        "returned_delivery_id": "7f3e2b0c-9a4d-4e51-b6a8-c2d1e0f9a8b7",
        "from_address": "mailer-daemon@mail.acme.test",
        "snippet": "This is the mail system at host mail.acme.test. I'm sorry to have to inform you",
    },
    "dsn_postfix_delayed.eml": {
        "bounce_type": "soft",
        "status": "4.4.1",
        "diagnostic": "connect to mx.hooli.test[192.0.2.44]:25: Connection timed out",
        "final_recipient": "hank@hooli.test",
        "returned_message_ids": (
            "c4d5e6f7a8b94c0d8e1f2a3b4c5d6e7f@acme.test",
            "b3c4d5e6f7a84b9c8d0e1f2a3b4c5d6e@acme.test",
        ),
        "returned_delivery_id": "c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f",
    },
    "dsn_gmail.eml": {
        "bounce_type": "hard",
        "status": "5.1.1",
        "diagnostic": "550-5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces. "
        "https://support.google.com/mail/?p=NoSuchUser",
        "final_recipient": "ivy@pied-piper.test",
        "returned_message_ids": ("e5f6a7b8c9d04e1f9a2b3c4d5e6f7a8b@acme.test",),
        "returned_delivery_id": "e5f6a7b8-c9d0-4e1f-9a2b-3c4d5e6f7a8b",
        "snippet": "** Address not found ** Your message wasn't delivered to ivy@pied-piper.test",
    },
    "dsn_m365_recipient_not_found.eml": {
        "bounce_type": "hard",
        "status": "5.1.10",
        "diagnostic": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "final_recipient": "grace@contoso.test",
        "returned_message_ids": ("f6a7b8c9d0e14f2a8b3c4d5e6f7a8b9c@acme.test",),
        "returned_delivery_id": "f6a7b8c9-d0e1-4f2a-8b3c-4d5e6f7a8b9c",
        "subject": "Undeliverable: Contoso and outbound",
    },
    "ndr_qmail_text.eml": {
        "bounce_type": "hard",
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 <judy@initrode.test>... User unknown",
        "final_recipient": "judy@initrode.test",
        "returned_message_ids": (
            "0b1c2d3e4f5a4b6c9d7e8f9a0b1c2d3e@acme.test",
            "9a0b1c2d3e4f4a5b8c6d7e8f9a0b1c2d@acme.test",
        ),
        "returned_delivery_id": "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e",
        "message_id": None,
    },
    "ndr_exim_text.eml": {
        "bounce_type": "hard",
        "status": "5.2.1",
        "diagnostic": "550 5.2.1 Mailbox disabled for this recipient",
        "final_recipient": "art@vandelay.test",
        "returned_message_ids": ("1d2e3f4a5b6c4d7e8f9a0b1c2d3e4f5a@acme.test",),
        "returned_delivery_id": "1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a",
    },
}

OTHERS = {
    "newsletter.eml": {
        "from_address": "news@globex.test",
        "in_reply_to": (),
        "snippet": "This month: five ways to hire SDRs faster",
    },
}

EXPECTED = {
    **{name: (Kind.REPLY, fields) for name, fields in REPLIES.items()},
    **{name: (Kind.AUTO_REPLY, fields) for name, fields in AUTO_REPLIES.items()},
    **{name: (Kind.BOUNCE, fields) for name, fields in BOUNCES.items()},
    **{name: (Kind.OTHER, fields) for name, fields in OTHERS.items()},
}


def test_every_fixture_has_an_expectation():
    assert sorted(EXPECTED) == FIXTURES


@pytest.mark.parametrize("name", FIXTURES)
def test_each_fixture_is_classified_as_expected(name):
    kind, fields = EXPECTED[name]
    result = classify(load(name))
    assert result.kind is kind
    actual = {field: getattr(result, field) for field in fields}
    if "snippet" in fields:
        assert result.snippet.startswith(fields["snippet"])
        actual["snippet"] = fields["snippet"]
    assert actual == fields


@pytest.mark.parametrize("name", FIXTURES)
def test_crlf_line_endings_change_nothing(name):
    raw = load(name)
    assert classify(raw.replace(b"\n", b"\r\n")) == classify(raw)


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_replies_leave_the_quoted_message_and_signature_out_of_the_snippet(name):
    snippet = classify(load(name)).snippet
    assert snippet
    for quoted in ("ada@acme.test", "wrote:", "a écrit", "schrieb", "escribió", "Sent:", "Envoyé", "iPhone", "-- "):
        assert quoted not in snippet


@pytest.mark.parametrize("name", sorted(set(FIXTURES) - set(BOUNCES)))
def test_only_bounces_carry_bounce_details(name):
    result = classify(load(name))
    assert (result.bounce_type, result.status, result.final_recipient, result.returned_message_ids) == (
        None,
        None,
        None,
        (),
    )


@pytest.mark.parametrize("name", FIXTURES)
def test_the_header_block_alone_gives_the_same_kind_without_details(name):
    raw = load(name)
    full = classify(raw)
    alone = classify(header_block(raw), headers_only=True)
    assert alone.kind is full.kind
    assert (alone.message_id, alone.in_reply_to, alone.subject, alone.date) == (
        full.message_id,
        full.in_reply_to,
        full.subject,
        full.date,
    )
    assert (alone.snippet, alone.status, alone.return_date) == ("", None, None)
    assert classify(raw, headers_only=True) == alone


def only_fields(block: bytes, names) -> bytes:
    """The header lines (with their continuations) named `names`, as IMAP's HEADER.FIELDS gives them."""
    lines = list(re.finditer(rb"^([^\s:]+)[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n", block, re.MULTILINE))
    assert lines, "no header lines"
    return b"".join(m.group(0) for m in lines if m.group(1).decode().lower() in names) + b"\r\n"


@pytest.mark.parametrize("name", FIXTURES)
def test_the_header_fields_a_reader_fetches_give_the_same_answer_as_the_whole_block(name):
    block = header_block(load(name))
    fields = only_fields(block, HEADER_FIELDS)
    assert len(fields) < len(block)
    assert classify(fields, headers_only=True) == classify(block, headers_only=True)


def test_reading_a_header_left_out_of_the_fields_fails_loudly():
    from webapp.engine import inbound

    block = inbound._HeaderBlock(b"Subject: hi\r\n\r\n")
    with pytest.raises(KeyError, match="HEADER_FIELDS"):
        inbound._header(block, "x-something-new")


@pytest.mark.parametrize("name", FIXTURES)
def test_looks_like_bounce_picks_out_exactly_the_bounces(name):
    assert looks_like_bounce(header_block(load(name))) is (name in BOUNCES)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("From: MAILER-DAEMON@mx.example.test\nSubject: hi", True),
        ("From: postmaster@example.test\nSubject: hi", True),
        ("From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>", True),
        ("From: Ada <ada@example.test>\nSubject: Undeliverable: Quick question", True),
        ("From: x@example.test\nSubject: Unzustellbar: Kurze Frage", True),
        ("From: x@example.test\nSubject: Non remis : Une question", True),
        ("From: x@example.test\nSubject: Returned mail: see transcript for details", True),
        ("From: x@example.test\nSubject: Delivery Status Notification (Delay)", True),
        ("From: x@example.test\nX-Failed-Recipients: bob@example.test", True),
        ("Content-Type: multipart/report; report-type=delivery-status; boundary=x", True),
        ("Content-Type: multipart/report; report-type=disposition-notification; boundary=x", False),
        ("From: Ada <ada@example.test>\nSubject: Re: Undeliverable: Quick question", False),
        ("From: Bob <bob@example.test>\nSubject: Re: Quick question", False),
        ("", False),
    ],
)
def test_looks_like_bounce_reads_headers(headers, expected):
    assert looks_like_bounce(headers.encode() + b"\n\n") is expected


# Replies: what counts as the new text ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "Yes, Thursday works.\n\nOn Tue, Mar 3, 2026 at 10:00 AM Ada Lovelace <ada@acme.test> wrote:\n> Hi",
            "Yes, Thursday works.",
            id="gmail attribution",
        ),
        pytest.param(
            "Yes.\n\nOn Tue, Mar 3, 2026 at 10:00 AM Ada Lovelace <\nada@acme.test> wrote:\n\n> Hi",
            "Yes.",
            id="gmail attribution wrapped over two lines",
        ),
        pytest.param(
            "Oui.\n\nLe mar. 3 mars 2026 à 10:00, Ada Lovelace <ada@acme.test> a\u00a0écrit\u00a0:\n> Bonjour",
            "Oui.",
            id="french attribution with non-breaking spaces",
        ),
        pytest.param(
            "Gerne.\n\nAm Di., 3. März 2026 um 10:00 Uhr schrieb Ada Lovelace <ada@acme.test>:\n> Hallo",
            "Gerne.",
            id="german attribution",
        ),
        pytest.param(
            "Gerne.\n\nAda Lovelace <ada@acme.test> schrieb am Di., 3. März 2026, 10:00:\n\n> Hallo",
            "Gerne.",
            id="german mobile attribution",
        ),
        pytest.param(
            "Sí.\n\nEl mar, 3 mar 2026 a las 10:00, Ada Lovelace (<ada@acme.test>) escribió:\n> Hola",
            "Sí.",
            id="spanish attribution",
        ),
        pytest.param(
            "Yes.\n\nOn 3 Mar 2026, at 10:00, Ada Lovelace <ada@acme.test> wrote:\n\nHi Bob (no quote marks)",
            "Yes.",
            id="attribution above an unquoted message",
        ),
        pytest.param(
            "Sure.\n\nFrom: Ada Lovelace <ada@acme.test>\nSent: Tuesday, March 3, 2026 10:00 AM\nTo: Bob\n\nHi Bob",
            "Sure.",
            id="outlook header block",
        ),
        pytest.param(
            "Avec plaisir.\n\n*De :* Ada <ada@acme.test>\n*Envoyé :* mardi 3 mars 2026 10:00\n*À :* Claire\n\nBonjour",
            "Avec plaisir.",
            id="french outlook header block",
        ),
        pytest.param(
            "Gerne.\n\nVon: Ada <ada@acme.test>\nGesendet: Dienstag, 3. März 2026 10:00\nAn: Jonas\nBetreff: Frage",
            "Gerne.",
            id="german outlook header block",
        ),
        pytest.param(
            "Vale.\n\nDe: Ada <ada@acme.test>\nEnviado: martes, 3 de marzo de 2026 10:00\nPara: Lucía\nAsunto: x",
            "Vale.",
            id="spanish outlook header block",
        ),
        pytest.param("Ok.\n-----Original Message-----\nFrom: Ada\nHi", "Ok.", id="original message separator"),
        pytest.param("D'accord.\n-----Message d'origine-----\nDe : Ada", "D'accord.", id="french separator"),
        pytest.param("Ok.\n-----Ursprüngliche Nachricht-----\nVon: Ada", "Ok.", id="german separator"),
        pytest.param("Vale.\n-----Mensaje original-----\nDe: Ada", "Vale.", id="spanish separator"),
        pytest.param("Call me.\n\n-- \nBob Stone\n+1 555 0100", "Call me.", id="signature separator"),
        pytest.param("Call me.\n\nSent from my iPhone\n\n> On ...", "Call me.", id="iphone signature"),
        pytest.param("Appelez-moi.\n\nEnvoyé de mon iPhone", "Appelez-moi.", id="french iphone signature"),
        pytest.param("Ruf an.\n\nVon meinem iPhone gesendet", "Ruf an.", id="german iphone signature"),
        pytest.param("Llámame.\n\nEnviado desde mi iPhone", "Llámame.", id="spanish iphone signature"),
        pytest.param(
            "Ada wrote:\n> How many?\n\nFour.\n\n> Which CRM?\n\nHubSpot.",
            "Four.\n\n\nHubSpot.",
            id="answers written inline are kept",
        ),
        pytest.param(
            "Thanks, that sounds great.\n\n- one\n- two\n\nBest,\nBob",
            "Thanks, that sounds great.\n\n- one\n- two\n\nBest,\nBob",
            id="thanks, lists and sign-offs are kept",
        ),
        pytest.param(
            "Here is what our CFO wrote:\nWe have no budget until Q3.",
            "Here is what our CFO wrote:\nWe have no budget until Q3.",
            id="a 'wrote:' line above no quote is kept",
        ),
        pytest.param("> only quoted\n> text", "", id="nothing new"),
    ],
)
def test_strip_quoted_keeps_only_the_new_text(body, expected):
    assert strip_quoted(body) == expected


def test_a_long_snippet_is_cut_at_a_word_with_an_ellipsis():
    raw = message("From: bob@example.test\nIn-Reply-To: <x@acme.test>", "word " * 200)
    snippet = classify(raw).snippet
    assert len(snippet) <= SNIPPET_CHARS
    assert snippet.endswith("word…")


def test_an_html_only_gmail_reply_leaves_out_the_gmail_quote():
    html = (
        '<div dir="ltr">Yes &amp; <b>soon</b>.<br>Bob</div><div class="gmail_signature">Bob Stone | CEO</div>'
        '<div class="gmail_quote"><div class="gmail_attr">On Tue, Mar 3, 2026 Ada wrote:</div>'
        "<blockquote>Hi <div>nested</div> Bob</blockquote></div><p>after</p>"
    )
    raw = message("From: bob@example.test\nIn-Reply-To: <x@acme.test>\nContent-Type: text/html", html)
    assert classify(raw).snippet == "Yes & soon. Bob after"


def test_malformed_html_falls_back_to_stripping_tags():
    raw = message("From: bob@example.test\nContent-Type: text/html", "<p>Hello <![if !supportLists]>there</p>")
    assert classify(raw).snippet.startswith("Hello")


def test_only_the_first_256_kb_of_a_text_part_are_read():
    body = "Interested. " + "x " * 200_000 + "back on 12 January"
    raw = message("From: bob@example.test\nAuto-Submitted: auto-replied\nDate: Mon, 5 Jan 2026 10:00 +0000", body)
    result = classify(raw)
    assert result.snippet.startswith("Interested. x x")
    assert result.return_date is None


# Identifiers and headers -------------------------------------------------------------------------


def test_message_ids_lose_brackets_comments_and_case_and_keep_their_order_once():
    raw = message(
        "Message-ID:   <CAB+Xy=Z@Mail.Gmail.COM> (Gmail)\n"
        f"In-Reply-To: <{OURS.upper()}> (Ada's message of Tue)\n"
        "References: <First@acme.test>\n <second@acme.test> <first@acme.test>\n"
        f"\t<{OURS}>\n"
    )
    result = classify(raw)
    assert result.message_id == "cab+xy=z@mail.gmail.com"
    assert result.in_reply_to == (OURS, "first@acme.test", "second@acme.test")


def test_a_message_id_without_brackets_is_still_read():
    assert classify(message("Message-ID: abc@example.test")).message_id == "abc@example.test"


def test_encoded_line_breaks_cannot_smuggle_headers_into_fields():
    raw = message(
        "From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40y?= <EVE@Example.test>\n"
        "Subject: =?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUudGVzdA==?=\n"
        "Date: Tue, 3 Mar 2026 10:00:00 +0100",
        "Hi",
    )
    result = classify(raw)
    assert result.subject == "Hi Bcc: victim@example.test"
    assert result.from_name == "Eve Bcc: x@y"
    assert result.from_address == "eve@example.test"
    assert result.date == utc(2026, 3, 3, 9, 0)


def test_a_date_without_a_zone_is_taken_as_utc_and_a_bad_one_is_dropped():
    assert classify(message("Date: Tue, 3 Mar 2026 10:00:00 -0000")).date == utc(2026, 3, 3, 10, 0)
    assert classify(message("Date: yesterday, around noon")).date is None


def test_a_message_without_headers_is_other():
    assert classify(b"") == Inbound(kind=Kind.OTHER)
    assert classify(b"\n\njust a body").kind is Kind.OTHER


# Auto-replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: auto-replied (vacation)", Kind.AUTO_REPLY),
        ("Auto-Submitted: auto-generated", Kind.AUTO_REPLY),
        ("Auto-Submitted: no", Kind.REPLY),
        ("X-Autoreply: yes", Kind.AUTO_REPLY),
        ("X-Autorespond: Out of office", Kind.AUTO_REPLY),
        ("Precedence: auto_reply", Kind.AUTO_REPLY),
        ("Subject: Out of Office: Quick question", Kind.AUTO_REPLY),
        ("Subject: Automatic reply: Quick question", Kind.AUTO_REPLY),
        ("Subject: Auto: Quick question", Kind.AUTO_REPLY),
        ("Subject: =?utf-8?q?R=C3=A9ponse_automatique_:_Question?=", Kind.AUTO_REPLY),
        ("Subject: Absence : Question", Kind.AUTO_REPLY),
        ("Subject: Automatische Antwort: Kurze Frage", Kind.AUTO_REPLY),
        ("Subject: =?utf-8?q?Respuesta_autom=C3=A1tica:_Pregunta?=", Kind.AUTO_REPLY),
        ("Subject: Re: Out of office\nPrecedence: bulk", Kind.AUTO_REPLY),
        ("Subject: Re: Out of office\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.test", Kind.AUTO_REPLY),
        ("Subject: Re: Out of office", Kind.REPLY),
        ("Subject: Re: Absence tracking for your team", Kind.REPLY),
        ("Subject: Re: Quick question\nX-MS-Exchange-Inbox-Rules-Loop: bob@example.test", Kind.REPLY),
        ("Subject: Re: Quick question\nPrecedence: bulk", Kind.REPLY),
    ],
)
def test_auto_replies_are_told_from_replies(headers, expected):
    raw = message(f"From: bob@example.test\nIn-Reply-To: <{OURS}>\n{headers}", "Thanks for your message.")
    assert classify(raw).kind is expected


def test_a_read_receipt_is_an_auto_reply():
    raw = message(
        'From: bob@example.test\nContent-Type: multipart/report; report-type=disposition-notification; boundary="r"',
        "--r\nContent-Type: text/plain\n\nYour message was read.\n--r\nContent-Type: message/disposition-notification"
        "\n\nDisposition: manual-action/MDN-sent-manually; displayed\n--r--\n",
    )
    assert classify(raw).kind is Kind.AUTO_REPLY


@pytest.mark.parametrize(
    ("body", "sent", "expected"),
    [
        ("I'm back on 12 January.", "Mon, 5 Jan 2026", dt.date(2026, 1, 12)),
        ("I will be back in the office on Monday, January 12th.", "Mon, 29 Dec 2025", dt.date(2026, 1, 12)),
        ("I am out of the office until Friday.", "Mon, 2 Mar 2026", dt.date(2026, 3, 6)),
        ("Out from 1 March to 12 March.", "Mon, 2 Mar 2026", dt.date(2026, 3, 12)),
        ("Your message to me on 3 March will be read later.", "Mon, 2 Mar 2026", None),
        ("Del 2 al 9 de marzo estoy de vacaciones.", "Mon, 2 Mar 2026", dt.date(2026, 3, 9)),
        ("Away until 12/01/2026.", "Mon, 5 Jan 2026", dt.date(2026, 1, 12)),
        ("Back 03/04.", "Mon, 2 Mar 2026", dt.date(2026, 3, 4)),
        ("I was in Berlin on 3 March. Back on 12 March.", "Mon, 2 Mar 2026", dt.date(2026, 3, 12)),
        ("Away until 12 March, then back on 16 March.", "Mon, 2 Mar 2026", dt.date(2026, 3, 16)),
        ("Je suis de retour le 12 janvier.", "Mon, 5 Jan 2026", dt.date(2026, 1, 12)),
        ("Absente jusqu'au 1er février.", "Mon, 5 Jan 2026", dt.date(2026, 2, 1)),
        ("Absent du 2 au 9 mars.", "Mon, 2 Mar 2026", dt.date(2026, 3, 9)),
        ("Ich bin ab dem 12.01. wieder im Büro.", "Fri, 2 Jan 2026", dt.date(2026, 1, 12)),
        ("Am 12.01.2026 bin ich wieder da.", "Fri, 2 Jan 2026", dt.date(2026, 1, 12)),
        ("Ich bin bis zum 9. Januar nicht erreichbar.", "Fri, 2 Jan 2026", dt.date(2026, 1, 9)),
        ("Estaré fuera hasta el 9 de enero.", "Fri, 2 Jan 2026", dt.date(2026, 1, 9)),
        ("Regresaré el 12 de enero de 2027.", "Fri, 2 Jan 2026", dt.date(2027, 1, 12)),
        ("Back on 2026-01-12.", "Fri, 2 Jan 2026", dt.date(2026, 1, 12)),
        ("I am out of the office with limited access to email.", "Fri, 2 Jan 2026", None),
        ("Back on 31 February.", "Fri, 2 Jan 2026", None),
        ("Zurück um 10.30 Uhr.", "Fri, 2 Jan 2026", None),
        ("Back on 12 January.", None, None),
        ("Back on 12 January 2026.", None, dt.date(2026, 1, 12)),
    ],
)
def test_the_return_date_is_read_from_the_notice(body, sent, expected):
    date = f"\nDate: {sent} 10:00:00 +0000" if sent else ""
    raw = message(f"From: bob@example.test\nAuto-Submitted: auto-replied{date}", body)
    assert classify(raw).return_date == expected


def test_the_return_date_may_be_in_the_subject():
    raw = message("From: bob@example.test\nSubject: Abwesend bis 09.01.\nDate: Fri, 2 Jan 2026 10:00 +0100", "Danke.")
    assert classify(raw).return_date == dt.date(2026, 1, 9)


# Bounces ------------------------------------------------------------------------------------------

DSN = """From: MAILER-DAEMON@mail.example.test
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

The mail system.
--b
Content-Type: {ctype}

Reporting-MTA: dns; mail.example.test

{fields}
--b--
"""


def dsn(fields: str, ctype: str = "message/delivery-status") -> bytes:
    return DSN.format(fields=fields.strip(), ctype=ctype).encode()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("Final-Recipient: rfc822; a@x.test\nAction: failed\nStatus: 5.1.1", ("hard", "5.1.1")),
        ("Final-Recipient: rfc822; a@x.test\nAction: delayed\nStatus: 4.4.1", ("soft", "4.4.1")),
        ("Final-Recipient: rfc822; a@x.test\nAction: failed\nStatus: 4.4.7", ("soft", "4.4.7")),
        ("Final-Recipient: rfc822; a@x.test\nAction: failed\nDiagnostic-Code: smtp; 550 no such user", ("hard", None)),
        (
            "Final-Recipient: rfc822; a@x.test\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; 550 5.7.1 spam",
            ("hard", "5.7.1"),
        ),
        (
            "Final-Recipient: rfc822; a@x.test\nAction: delivered\nStatus: 2.0.0\n\n"
            "Final-Recipient: rfc822; b@x.test\nAction: failed\nStatus: 5.2.2",
            ("hard", "5.2.2"),
        ),
    ],
)
def test_a_dsn_gives_the_type_and_status_of_the_failed_recipient(fields, expected):
    result = classify(dsn(fields))
    assert result.kind is Kind.BOUNCE
    assert (result.bounce_type, result.status) == expected


def test_a_dsn_that_reports_only_deliveries_is_no_bounce():
    result = classify(dsn("Final-Recipient: rfc822; a@x.test\nAction: delivered\nStatus: 2.0.0"))
    assert result.kind is Kind.OTHER
    assert result.bounce_type is None


def test_a_global_delivery_status_part_is_read_too():
    result = classify(
        dsn("Final-Recipient: utf-8; José@X.test\nAction: failed\nStatus: 5.1.1", "message/global-delivery-status")
    )
    assert (result.kind, result.status, result.final_recipient) == (Kind.BOUNCE, "5.1.1", "josé@x.test")


def test_a_bounce_quoted_inside_a_forwarded_message_does_not_make_a_bounce():
    result = classify(load("reply_with_forwarded_message.eml"))
    assert (result.kind, result.final_recipient) == (Kind.REPLY, None)


def test_a_postmaster_writing_as_a_person_is_no_bounce():
    raw = message(
        f"From: postmaster@globex.test\nSubject: Re: your note\nIn-Reply-To: <{OURS}>", "Thanks, I forwarded it."
    )
    assert classify(raw).kind is Kind.REPLY


def test_a_delay_warning_without_a_dsn_is_a_soft_bounce():
    raw = message(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\n"
        "Subject: Warning: could not send message for past 4 hours",
        "This is a temporary failure. The mail system will keep trying to deliver it to <a@x.test>.",
    )
    result = classify(raw)
    assert (result.kind, result.bounce_type, result.final_recipient) == (Kind.BOUNCE, "soft", "a@x.test")


# Hostile input -----------------------------------------------------------------------------------

SEEDS = [load(name) for name in FIXTURES]
SNIPPETS = [b"\n", b"\r\n", b"\n\n", b"--", b":", b";", b"=?", b"?=", b"=?utf-8?b?", b"<", b">", b"\xff", b"\x00"]
SNIPPETS += [
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
    b"Content-Type: message/rfc822\n\n",
    b"Content-Type: message/delivery-status\n\n",
    b"Content-Transfer-Encoding: base64\n",
    b'; charset="\x00x"',
    b"<![if !x]>",
    b"Status: 5.",
    "\u2028".encode(),
]


@st.composite
def mutated_fixtures(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(("delete", "insert", "flip")))
        if action == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif action == "insert":
            data[position:position] = draw(st.sampled_from(SNIPPETS) | st.binary(max_size=16))
        elif data:
            data[min(position, len(data) - 1)] = draw(st.integers(0, 255))
    return bytes(data)


@contextlib.contextmanager
def no_fallback():
    """Fail if classify had to fall back to its safety net: the input must be handled, not survived."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("drumbeat.inbound")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == []


def check(result: Inbound) -> None:
    assert isinstance(result, Inbound)
    assert result.kind in Kind
    assert len(result.snippet) <= SNIPPET_CHARS
    assert result.date is None or result.date.utcoffset() == dt.timedelta(0)
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        values = value if isinstance(value, tuple) else (value,)
        for text in values:
            if isinstance(text, str):
                assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", text), (field.name, text)
    for found in (result.message_id, *result.in_reply_to, *result.returned_message_ids):
        assert found is None or (found == found.lower() and "<" not in found and ">" not in found)
    assert result.bounce_type in (None, "hard", "soft")


@settings(max_examples=250, deadline=None)
@given(st.binary(max_size=1500))
def test_random_bytes_never_raise(raw):
    with no_fallback():
        check(classify(raw))
        check(classify(raw, headers_only=True))
        assert looks_like_bounce(raw) in (True, False)


@settings(max_examples=300, deadline=None)
@given(mutated_fixtures())
def test_mutated_fixtures_never_raise(raw):
    with no_fallback():
        check(classify(raw))
        check(classify(header_block(raw), headers_only=True))
        assert looks_like_bounce(raw) in (True, False)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_any_header_text_is_handled(text):
    raw = ("From: " + text + "\nSubject: " + text + "\nMessage-ID: " + text + "\nDate: " + text + "\n\n").encode(
        "utf-8", "surrogatepass"
    )
    with no_fallback():
        check(classify(raw, headers_only=True))


def test_mime_nested_deeper_than_the_parser_recurses_is_classified_from_its_headers():
    raw = b"Subject: Automatic reply: hi\nContent-Type: message/rfc822\n\n" + b"Content-Type: message/rfc822\n\n" * 3000
    assert classify(raw).kind is Kind.AUTO_REPLY
