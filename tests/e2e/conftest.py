"""Browser tests: the real app on a live HTTP server, driven by Debian's Chromium through Playwright.

- `live_server`: the app of the `app` fixture (a migrated SQLite file copied from the session's
  template, or the PostgreSQL scratch database when TEST_DATABASE_URL is set; rate limits off, a
  fixed SECRET_KEY) served by werkzeug on 127.0.0.1 and a free port, in a thread.
- `browser`: one headless Chromium for the session, from /usr/bin/chromium. When it is missing and
  we are root, `apt-get install chromium` runs once; if it still is not there, the tests are skipped.
- `context` / `page`: a fresh browser context per test. Any console error, uncaught page error,
  CSP violation, server error (5xx or logged exception) fails the test that caused it; a test
  expecting one says so with `e2e_problems.allow(regex)`.
- `log_in(page, persona)`: signs in through the login form.
"""

import contextlib
import logging
import re
import traceback

import pytest
import sqlalchemy as sa
from flask import request

from tests.conftest import make_config
from tests.e2e.live import CHROMIUM, LiveServer, ensure_chromium, launch_chromium
from webapp.extensions import db
from webapp.models import CampaignInstance
from webapp.services.demo import fill_demo_workspace

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - requirements-dev.txt installs it
    sync_playwright = None

VIEWPORT = {"width": 1280, "height": 900}
DEFAULT_TIMEOUT_MS = 10_000
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__e2eCspViolation(
    `${event.violatedDirective} blocked ${event.blockedURI || "(inline)"} in ${event.sourceFile || document.URL}` +
    `:${event.lineNumber}`
  );
}, true);
"""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(config.rootpath / "tests" / "e2e"):
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives a real browser against a live server (tests/e2e)")


class BrowserProblems(list):
    """What went wrong in the browser or the server during a test, reported once.

    A test that provokes an error on purpose (a 409 or 422 that htmx swaps in, which Chromium and
    htmx log to the console) says so first: `e2e_problems.allow(r"status of 409")`.
    """

    def __init__(self):
        super().__init__()
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def append(self, problem: str) -> None:
        if not any(pattern.search(problem) for pattern in self.allowed):
            super().append(problem)

    def take(self) -> list[str]:
        taken = list(self)
        self.clear()
        return taken


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    problems: BrowserProblems | None = getattr(item, "e2e_problems", None)
    try:
        result = yield
    except BaseException:
        if problems:
            item.add_report_section("call", "browser problems", "\n".join(problems.take()))
        raise
    if problems:
        pytest.fail("The browser or the server reported problems:\n" + "\n".join(f"- {p}" for p in problems.take()))
    return result


@pytest.fixture(scope="session")
def chromium_path(request) -> str:
    capture = request.config.pluginmanager.getplugin("capturemanager")

    said: list[str] = []

    def announce(message: str) -> None:
        said.append(message)
        with capture.global_and_fixture_disabled():
            print(f"\n[e2e] {message}", flush=True)

    path = ensure_chromium(announce)
    if path is None:  # a browser test that does not run proves nothing: fail, saying why
        pytest.fail(f"chromium not available: {said[-1] if said else CHROMIUM + ' is missing'}")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    if sync_playwright is None:
        pytest.fail("playwright is not installed (pip install -r requirements-dev.txt); chromium not driven")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, chromium_path)
        yield chromium
        chromium.close()


@pytest.fixture
def app_config(database_url_for_test, tmp_path):
    return make_config(
        database_url_for_test,
        SECRET_KEY="e2e-secret-key",
        RATELIMIT_ENABLED=False,
        LOG_LEVEL="WARNING",
        IMPORT_UPLOAD_FOLDER=str(tmp_path / "uploads"),
    )


@pytest.fixture
def e2e_problems(request):
    problems = BrowserProblems()
    request.node.e2e_problems = problems
    yield problems
    late = problems.take()  # reported after the test's body had finished (e.g. while closing the page)
    if late:
        pytest.fail("The browser or the server reported problems after the test:\n" + "\n".join(late))


class _ServerErrors(logging.Handler):
    """The app's logged errors (its 500 handler logs the exception) as test problems."""

    def __init__(self, problems: BrowserProblems):
        super().__init__(level=logging.ERROR)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        detail = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            detail = f": {type(exc).__name__}: {exc}"
            self.problems.append("server traceback:\n" + "".join(traceback.format_exception(exc)).rstrip())
        self.problems.append(f"server error logged: {record.getMessage()}{detail}")


@pytest.fixture
def live_server(app, e2e_problems):
    def record_5xx(response):
        if response.status_code >= 500:
            e2e_problems.append(f"server answered {response.status_code} to {request.method} {request.full_path}")
        return response

    # Not app.after_request(): that refuses once the app has served a request (a test client's).
    app.after_request_funcs.setdefault(None, []).append(record_5xx)
    handler = _ServerErrors(e2e_problems)
    app.logger.addHandler(handler)
    server = LiveServer(app).start()
    yield server
    server.stop()
    app.logger.removeHandler(handler)
    app.after_request_funcs[None].remove(record_5xx)


@pytest.fixture
def new_context(browser, live_server, e2e_problems):
    """`new_context(**options)`: a browser context on the live server that reports every problem."""
    contexts = []

    def make(**options):
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)

        def on_console(message):
            text = message.text
            if message.type == "error" or "Content Security Policy" in text:
                where = (message.location or {}).get("url")
                e2e_problems.append(f"console {message.type}: {text}" + (f" ({where})" if where else ""))

        def on_page(page):
            page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm and data-confirm: say yes

        context.on("console", on_console)
        context.on("weberror", lambda error: e2e_problems.append(f"page error: {error.error}"))
        context.on("page", on_page)
        context.expose_function("__e2eCspViolation", lambda text: e2e_problems.append(f"CSP violation: {text}"))
        context.add_init_script(CSP_REPORTER)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        with contextlib.suppress(PlaywrightError):
            context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()


def log_in(page, persona) -> None:
    """Sign in through the login form, as a person would."""
    page.goto("/login")
    page.get_by_label("Email").fill(persona.email)
    page.get_by_label("Password").fill(persona.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: not url.rstrip("/").endswith("/login"))
    page.locator("nav.site-nav").wait_for()


@pytest.fixture
def demo_campaign(app, owner):
    """The owner's workspace filled with the demo data; the id of its first active campaign."""
    with app.app_context():
        workspace = owner.workspace
        fill_demo_workspace(workspace.name, contacts=60)
        return db.session.scalar(
            sa.select(CampaignInstance.id)
            .where(CampaignInstance.workspace_id == workspace.id, CampaignInstance.status == "active")
            .order_by(CampaignInstance.created_at)
            .limit(1)
        )
