"""The pieces the browser tests and the screenshot script share: the app served over real HTTP on
127.0.0.1, and Debian's Chromium driven by Playwright.

Playwright never downloads a browser here (`playwright install` is not used): it launches the
Chromium that Debian's `chromium` package puts at /usr/bin/chromium.
"""

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.apt import ensure_package

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


def chromium_installed() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def ensure_chromium(announce: Callable[[str], None] = print) -> str | None:
    """The path of Debian's Chromium, installed with apt-get when missing and we are root; None,
    after saying why, when it is still not there."""
    problem = ensure_package("chromium", chromium_installed, announce)
    if problem is not None:
        announce(problem)
        return None
    return CHROMIUM


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
