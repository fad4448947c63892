"""A PostgreSQL cluster of a test's own (`pg_cluster`), in a temporary directory, that the test
may stop and start at will: the shared server is never touched.

initdb and pg_ctl come from /usr/lib/postgresql/*/bin (the newest version); as root they run as
an unprivileged system user, created when missing. The cluster listens on 127.0.0.1 and a free
port with trust authentication and fsync off; it is stopped and its directory removed afterwards,
whatever the test did to it.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from webapp.config import database_url

SYSTEM_USER = "drumbeattest"


def server_binaries() -> Path | None:
    """The bin directory of the newest PostgreSQL server installed, or None."""
    found = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "pg_ctl").exists()]
    return max(found, key=lambda path: _version(path.parent.name), default=None)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def unprivileged_user() -> str | None:
    """The user the server runs as when we are root (PostgreSQL refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # Another run may create it at the same moment: what counts is that it exists afterwards.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True,
            check=False,
        )
        pwd.getpwnam(SYSTEM_USER)
    return SYSTEM_USER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One initdb'd data directory under `root` and the server running on it."""

    def __init__(self, bindir: Path, root: Path, user: str | None):
        self.bindir = bindir
        self.root = root
        self.user = user
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "server.log"
        self.port = free_port()

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) for `database` on this cluster."""
        return database_url(f"postgresql://postgres@127.0.0.1:{self.port}/{database}")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def init(self) -> None:
        self.sockets.mkdir()
        if self.user:
            shutil.chown(self.root, self.user)
            shutil.chown(self.sockets, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        """Create `name` and return its URL."""
        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}\n{self.log_tail()}")


@pytest.fixture
def pg_cluster():
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="drumbeat-pg-"))
    cluster = Cluster(bindir, root, unprivileged_user())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            if cluster.running:
                cluster.stop("immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)
