"""Screenshots of every dashboard page, for the docs: `make screenshots` (`python -m tests.e2e.screenshots`).

Starts the app on a live server (as the browser tests do) over a fresh SQLite database filled with
the demo data (`fill_demo_workspace("Demo", contacts=600)`) and signs in as a demo owner in Debian's
Chromium. Saves into docs/screenshots/ one PNG per page as a 1280x900 window shows it, the
campaign's performance panel (charts and tables) whole, and the campaign page at 360 px wide (its
top 3200 px). The worker runs (twice, at send times a day apart) just before the task list and the
outbox are taken, so they have something in them. Problems the browser reports (console errors,
CSP violations) are printed, and make the script exit with status 1.
"""

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask_migrate import upgrade
from playwright.sync_api import sync_playwright

from tests.e2e.live import CHROMIUM, ensure_chromium, launch_chromium, serving
from webapp import create_app
from webapp.config import ROOT, TestConfig
from webapp.extensions import db

EMAIL = "demo@drumbeat.test"
PASSWORD = "demo password 123"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 360, "height": 800}
NARROW_MAX_HEIGHT = 3200


def build_app(folder: Path):
    config = type(
        "ScreenshotConfig",
        (TestConfig,),
        {
            "TESTING": False,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'screenshots.db'}",
            "SECRET_KEY": "screenshots-secret-key",
            "RATELIMIT_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            "IMPORT_UPLOAD_FOLDER": str(folder / "uploads"),
        },
    )
    app = create_app(config)
    with app.app_context():
        upgrade()
    return app


def next_send_time(now: datetime) -> datetime:
    """A weekday at 11:00 UTC, today or later: inside the demo templates' send window."""
    moment = now.replace(hour=11, minute=0, second=0, microsecond=0)
    if moment < now:
        moment += timedelta(days=1)
    while moment.weekday() >= 5:
        moment += timedelta(days=1)
    return moment


def fill(app) -> dict:
    """The demo workspace, its owner and an API key; the ids the pages need."""
    from webapp.models import CampaignEnrollment, CampaignInstance, CampaignTemplate, Workspace
    from webapp.services.api_keys import create_api_key_for_user
    from webapp.services.demo import fill_demo_workspace
    from webapp.services.users import create_user

    with app.app_context():
        print(fill_demo_workspace("Demo", contacts=600))
        create_user(email=EMAIL, password=PASSWORD, workspace_name="Demo", role="owner")
        create_api_key_for_user(email=EMAIL, name="CRM sync")
        workspace_id = db.session.scalar(sa.select(Workspace.id).where(Workspace.name == "Demo"))
    with app.app_context():
        first = sa.select(CampaignInstance.id).where(
            CampaignInstance.workspace_id == workspace_id, CampaignInstance.status == "active"
        )
        return {
            "campaign": db.session.scalar(first.order_by(CampaignInstance.created_at).limit(1)),
            "template": db.session.scalar(
                sa.select(CampaignTemplate.id)
                .where(CampaignTemplate.workspace_id == workspace_id)
                .order_by(CampaignTemplate.created_at)
                .limit(1)
            ),
            "contact": db.session.scalar(
                sa.select(CampaignEnrollment.contact_id)
                .join(CampaignInstance)
                .where(CampaignInstance.workspace_id == workspace_id, CampaignEnrollment.status == "active")
                .order_by(CampaignEnrollment.enrolled_at, CampaignEnrollment.id)
                .limit(1)
            ),
        }


def run_worker(app) -> None:
    """Send the due first steps; a day later the LinkedIn steps that follow them become tasks.

    Run after the pages with charts are taken: these sends all land on one day, a spike.
    """
    from webapp.worker import Worker

    first_run = next_send_time(datetime.now(UTC))
    for moment in (first_run, next_send_time(first_run + timedelta(days=1))):
        report = Worker(app).run_once(now=moment)
        print(f"worker at {moment:%Y-%m-%d %H:%M} UTC: sent={report.sent} tasks={report.tasks}")


def watch(context, problems: list[str]) -> None:
    def on_console(message):
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"console {message.type}: {message.text}")

    context.on("console", on_console)
    context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))


def log_in(page) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("nav.site-nav").wait_for()


def settle(page) -> None:
    """Lazy panels loaded, charts drawn (Chart.js animates for about a second)."""
    for panel in ("#performance", "#schedule"):
        if page.locator(f"{panel}[aria-busy='true']").count():
            page.evaluate(f"document.querySelector('{panel}').scrollIntoView()")
            page.locator(f"{panel}:not([aria-busy='true'])").wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1200)


def shoot(page, path: str, target: Path, *, max_height: int | None = None) -> None:
    """The page at `path` as the viewport shows it; with `max_height`, the page down to that height."""
    page.goto(path)
    settle(page)
    if max_height is None:
        page.screenshot(path=str(target))
    else:
        height = min(page.evaluate("document.documentElement.scrollHeight"), max_height)
        width = page.viewport_size["width"]
        page.screenshot(path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    print(f"{target}  ({path})")


def shoot_panel(page, selector: str, target: Path) -> None:
    """One part of the current page (e.g. the campaign's performance panel with its charts)."""
    settle(page)
    page.locator(selector).screenshot(path=str(target))
    print(f"{target}  ({selector} of {page.url})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    args = parser.parse_args(argv)
    if ensure_chromium() is None:
        print(f"chromium not available: {CHROMIUM} is missing; install Debian's chromium package.", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="drumbeat-screenshots-") as folder:
        app = build_app(Path(folder))
        ids = fill(app)
        pages = [
            ("01-overview", "/"),
            ("02-templates", "/templates"),
            ("03-sequence-builder", f"/templates/{ids['template']}"),
            ("04-campaigns", "/campaigns"),
            ("05-campaign", f"/campaigns/{ids['campaign']}"),
            ("06-enroll", f"/campaigns/{ids['campaign']}/enroll"),
            ("07-contacts", "/contacts"),
            ("08-contact", f"/contacts/{ids['contact']}"),
            ("09-tasks", "/tasks"),
            ("10-settings", "/settings"),
            ("11-outbox", "/outbox"),
        ]
        problems: list[str] = []
        with serving(app) as server, sync_playwright() as playwright:
            # Links shown on the pages (webhook URLs) with a stable address instead of a random port.
            app.config["PUBLIC_BASE_URL"] = "https://drumbeat.example.com"
            browser = launch_chromium(playwright)

            def signed_in_page(viewport: dict):
                context = browser.new_context(base_url=server.url, viewport=viewport)
                context.set_default_timeout(20_000)
                watch(context, problems)
                page = context.new_page()
                log_in(page)
                return page

            page = signed_in_page(WIDE)
            for name, path in pages[:8]:
                shoot(page, path, out / f"{name}.png")
                if name == "05-campaign":
                    shoot_panel(page, "#performance", out / "05-campaign-performance.png")
            page.context.close()
            page = signed_in_page(NARROW)
            shoot(page, pages[4][1], out / "05-campaign-360.png", max_height=NARROW_MAX_HEIGHT)
            page.context.close()

            run_worker(app)
            page = signed_in_page(WIDE)
            for name, path in pages[8:]:
                shoot(page, path, out / f"{name}.png")
            page.context.close()
            browser.close()
        with app.app_context():
            db.engine.dispose()
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
