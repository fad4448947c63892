"""A real SMTP server for tests: aiosmtpd on a free local port, recording what it receives.

`Sink` can be told to misbehave (4xx/5xx replies, dropped connections, slow DATA); a
recipient whose local part starts with `reply` makes RCPT answer with the rest of it, e.g.
`reply451-4.3.0_later@example.com` gets `451 4.3.0 later`.
"""

import asyncio
import socket

import pytest
from aiosmtpd.controller import Controller


@pytest.fixture
def free_port():
    # aiosmtpd's Controller cannot bind port 0, so find a free port first.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """An aiosmtpd handler that records messages and can be told to misbehave."""

    def __init__(self):
        self.received = []
        self.mail_reply = "250 OK"
        self.data_reply = "250 OK"
        self.drop_after_data = False
        self.close_after_data = False
        self.data_delay = 0.0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply.startswith("250"):
            envelope.mail_from = address
        return self.mail_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reply"):
            return local.removeprefix("reply").replace("-", " ", 1).replace("_", " ")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.drop_after_data:
            server.transport.close()
            return "250 OK"
        if not self.data_reply.startswith("250"):
            return self.data_reply
        self.received.append((session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.close_after_data:
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return "250 OK"


@pytest.fixture
def sink():
    return Sink()


@pytest.fixture
def smtp_server(sink, free_port):
    controller = Controller(sink, hostname="127.0.0.1", port=free_port)
    controller.start()
    yield controller
    controller.stop()


class AuthSink(Sink):
    """A sink that wants a login: `users` maps a username to its password; each message records
    who sent it (`received` items gain the login as a fifth element)."""

    def __init__(self, users: dict[str, str]):
        super().__init__()
        self.users = users
        self.logins: list[str] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                self.logins.append(login)
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250") and self.received and len(self.received[-1]) == 4:
            self.received[-1] = (*self.received[-1], session.auth_data)
        return reply


@pytest.fixture
def auth_sink():
    return AuthSink({"ada": "ada-secret", "bo": "bo-secret"})


@pytest.fixture
def auth_smtp_server(auth_sink, free_port):
    """An SMTP server that requires AUTH (PLAIN/LOGIN, allowed without TLS here)."""
    controller = Controller(
        auth_sink,
        hostname="127.0.0.1",
        port=free_port,
        authenticator=auth_sink.authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield controller
    controller.stop()
