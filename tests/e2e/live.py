"""The pieces the browser tests and the screenshot script share: the app served over real HTTP on
127.0.0.1, and Debian's Chromium driven by Playwright.

Playwright never downloads a browser here (`playwright install` is not used): it launches the
Chromium that Debian's `chromium` package puts at /usr/bin/chromium.
"""

import contextlib
import fcntl
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium phones home at start, which this machine's network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
INSTALL_LOCK = "/tmp/drumbeat-e2e-chromium.lock"


def chromium_installed() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def ensure_chromium(announce: Callable[[str], None] = print) -> str | None:
    """The path of Debian's Chromium, installed with apt-get when missing and we are root.

    Returns None, after saying why, when it is still not there. A lock keeps parallel test
    processes from running apt-get at the same time; the second one finds it installed.
    """
    if chromium_installed():
        return CHROMIUM
    if os.geteuid() != 0:
        announce(f"{CHROMIUM} is missing and this is not root: cannot apt-get install chromium.")
        return None
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if chromium_installed():
            return CHROMIUM
        announce(f"{CHROMIUM} is missing: running `apt-get update && apt-get install -y chromium` (once)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            result = subprocess.run(
                "apt-get update -qq && apt-get install -y -qq chromium",
                shell=True,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            announce(f"apt-get install chromium failed: {exc}")
            return None
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            announce(f"apt-get install chromium failed ({result.returncode}): {' / '.join(tail)}")
    if chromium_installed():
        announce(f"Installed Debian's chromium at {CHROMIUM}.")
        return CHROMIUM
    return None


def launch_chromium(playwright, executable_path: str = CHROMIUM):
    """Headless Chromium from Debian's package. Its launcher script prints a harmless `[:` line."""
    return playwright.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS, headless=True)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (errors are still logged)."""

    def log_request(self, code="-", size="-"):
        pass


class LiveServer:
    """`app` served by werkzeug on 127.0.0.1 and a free port, in a background thread.

    Threaded, as a browser loads a page's lazy panels in parallel. Sets PUBLIC_BASE_URL to its own
    address, so links built for the outside (webhook URLs, unsubscribe links) point at it.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1"):
        self.app = app
        self.server: BaseWSGIServer = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self.server.server_port}"
        app.config["PUBLIC_BASE_URL"] = self.url
        self._thread = threading.Thread(target=self.server.serve_forever, name="e2e-live-server", daemon=True)

    def start(self) -> "LiveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()
