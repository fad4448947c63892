"""A real IMAP server for tests: a throwaway Dovecot (Debian's `dovecot-imapd`), one per test process.

`imap_server` (session scope) writes a config into a temp dir and runs `dovecot -F -c <conf>`:
plain IMAP on `port` (STARTTLS offered there too) and implicit TLS on `tls_port`, both on
127.0.0.1, with a self-signed certificate for 127.0.0.1/localhost (`server.ssl_context` trusts it).
Each user has a passwd-file of their own (`{PLAIN}` password): Dovecot checks a file it knows for
changes at most once a second but reads a new one at once, so `make_imap_user()` / `mailbox` add a
fresh user per test with no restart. Under xdist each worker process starts its own server in its
own temp dir, on its own ports.

As root, Dovecot never runs mail processes as uid 0: mail belongs to `nobody`, the login processes
run as `dovenull` and the internal ones as `dovecot` (both made by the Debian package), and no
service chroots; as any other user, everything runs as that user. Without `/usr/sbin/dovecot`
(`apt-get install dovecot-imapd`) the tests that use these fixtures are skipped. The config is
Dovecot 2.3's (Debian 12); on 2.4 they are skipped with a message saying so.
"""

import contextlib
import ctypes
import datetime
import grp
import imaplib
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.apt import ensure_package

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def quote_mailbox(name: str) -> str:
    """An IMAP quoted string (imaplib sends arguments as they are). ASCII names only."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drumbeat test IMAP")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class ImapUser:
    """A mailbox on the test server. Each helper opens its own short connection on the plain port."""

    host: str
    port: int
    tls_port: int
    username: str
    password: str = field(repr=False)
    ssl_context: ssl.SSLContext = field(repr=False)
    folder: str = "INBOX"

    @contextlib.contextmanager
    def connect(self):
        """A logged-in imaplib connection on the plain port."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            conn.login(self.username, self.password)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(self, raw: bytes, folder: str = "INBOX", flags=()) -> int:
        """APPEND a message (CRLF line ends are added if missing) with flags such as "\\Seen"; returns its UID."""
        flags = (flags,) if isinstance(flags, str) else flags
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        with self.connect() as conn:
            typ, data = conn.append(quote_mailbox(folder), f"({' '.join(flags)})" if flags else None, None, raw)
            assert typ == "OK", data
            code = data[-1].decode()  # [APPENDUID <uidvalidity> <uid>] Append completed.
            return int(code.split("]")[0].split()[2])

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.connect() as conn:
            typ, data = conn.select(quote_mailbox(folder), readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("SEARCH", "ALL")
            assert typ == "OK", data
            return [int(uid) for uid in data[0].split()]

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        with self.connect() as conn:
            typ, data = conn.select(quote_mailbox(folder), readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
            assert typ == "OK" and data[0], data
            return {flag.decode() for flag in imaplib.ParseFlags(data[0])}

    def create(self, folder: str) -> None:
        with self.connect() as conn:
            typ, data = conn.create(quote_mailbox(folder))
            assert typ == "OK", data

    def delete(self, folder: str) -> None:
        with self.connect() as conn:
            typ, data = conn.delete(quote_mailbox(folder))
            assert typ == "OK", data


class DovecotServer:
    """One Dovecot process and its temp dir. `start()` picks the ports; `stop()` removes everything."""

    def __init__(self):
        self.host = HOST
        self.port = 0
        self.tls_port = 0
        self.process: subprocess.Popen | None = None
        self.mail_user, self.login_user, self.internal_user = _run_as_users()
        self.cert_pem, key_pem = self_signed_certificate()
        self.ssl_context = ssl.create_default_context(cadata=self.cert_pem.decode())
        self.root = Path(tempfile.mkdtemp(prefix="drumbeat-dovecot-", dir=_traversable_tmp()))
        try:
            self._lay_out(key_pem)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _lay_out(self, key_pem: bytes) -> None:
        self.root.chmod(0o755)  # the dovecot, dovenull and nobody users must reach their files
        (self.root / "cert.pem").write_bytes(self.cert_pem)
        key = self.root / "key.pem"
        key.touch(0o600)
        key.write_bytes(key_pem)
        mail = self.root / "mail"
        mail.mkdir()
        self.users_dir = self.root / "users"
        self.users_dir.mkdir(0o750)
        if os.geteuid() == 0:
            os.chown(mail, self.mail_user.pw_uid, self.mail_user.pw_gid)
            os.chown(self.users_dir, 0, self.internal_user.pw_gid)  # read by the auth process

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def config(self) -> str:
        root, mail_user = self.root, self.mail_user
        mail_group = grp.getgrgid(mail_user.pw_gid).gr_name
        no_chroot = "".join(
            f"service {name} {{\n  chroot =\n}}\n" for name in ("ipc", "imap-urlauth-login", "old-stats")
        )
        return f"""\
# Written by tests/imap_server.py for one test run.
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {self.host}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password still takes ~0.5 s: the auth process answers failures on a 500 ms timer.
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
mail_fsync = never
first_valid_uid = 1
mail_uid = {mail_user.pw_name}
mail_gid = {mail_group}
default_login_user = {self.login_user.pw_name}
default_internal_user = {self.internal_user.pw_name}
default_internal_group = {grp.getgrgid(self.internal_user.pw_gid).gr_name}
passdb {{
  driver = passwd-file
  # One passwd-file per user: Dovecot checks a file for changes at most once a second, but opens
  # a file it has not seen yet at once, so a user added a moment ago can log in straight away.
  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_name} gid={mail_group} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # Without this socket the auth process cannot count failures per IP, so repeated wrong
  # passwords are not answered ever more slowly (the "auth penalty": 2, 4, 8, 15 s).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{no_chroot}"""

    def start(self) -> "DovecotServer":
        for _attempt in range(3):  # another process may take a port between choosing and binding it
            self.port, self.tls_port = unused_port(), unused_port()
            if self.port == self.tls_port:
                continue
            conf = self.root / "dovecot.conf"
            conf.write_text(self.config())
            with open(self.root / "stderr.log", "ab") as stderr:
                self.process = subprocess.Popen(
                    [DOVECOT, "-F", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            if self._wait_until_ready():
                return self
            self._terminate()
        raise RuntimeError(f"Dovecot did not start:\n{self.log()}\n{(self.root / 'stderr.log').read_text()}")

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    greeting = sock.recv(200)
                with socket.create_connection((self.host, self.tls_port), timeout=1):
                    pass
                if greeting.startswith(b"* OK"):
                    return True
            time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # the master stops its children
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def add_user(self, username: str | None = None, password: str | None = None) -> ImapUser:
        username = username or f"u{secrets.token_hex(6)}"
        password = password or secrets.token_hex(12)
        if any(c in username + password for c in ":/\r\n") or username.startswith("."):
            raise ValueError("a passwd-file user name or password cannot contain ':', '/' or line breaks")
        path = self.users_dir / username
        if path.exists():
            raise ValueError(f"IMAP user {username!r} exists already")
        path.write_text(f"{username}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        if os.geteuid() == 0:
            os.chown(path, 0, self.internal_user.pw_gid)
        path.chmod(0o640)
        return ImapUser(self.host, self.port, self.tls_port, username, password, self.ssl_context)


def _run_as_users() -> tuple[pwd.struct_passwd, pwd.struct_passwd, pwd.struct_passwd]:
    """(mail, login, internal) users: unprivileged system users as root, else the current user."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me, me, me
    try:
        return pwd.getpwnam("nobody"), pwd.getpwnam("dovenull"), pwd.getpwnam("dovecot")
    except KeyError as exc:
        pytest.fail(f"Dovecot's system users are missing ({exc}): reinstall dovecot-core")


def _traversable_tmp() -> str:
    """The temp dir, unless other users cannot reach into it (e.g. TMPDIR under /root); then /tmp."""
    tmp = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & 0o001 for p in (tmp, *tmp.parents)):
        return str(tmp)
    return "/tmp"


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no Dovecot outlives a killed run."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _dovecot_version() -> str:
    out = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


@pytest.fixture(scope="session")
def imap_server():
    # An inbox test that does not run proves nothing: install Dovecot when we can, else fail saying why.
    problem = ensure_package("dovecot-imapd", lambda: os.access(DOVECOT, os.X_OK))
    if problem is not None:
        pytest.fail(f"needs Dovecot ({DOVECOT}): {problem}")
    version = _dovecot_version()
    if not version.startswith("2.3."):
        pytest.fail(f"tests/imap_server.py writes a Dovecot 2.3 config; found {version!r}")
    server = DovecotServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def make_imap_user(imap_server):
    """`make_imap_user()` adds a fresh user (random name and password) and returns its `ImapUser`."""
    return imap_server.add_user


@pytest.fixture
def mailbox(make_imap_user) -> ImapUser:
    return make_imap_user()
