"""Commands: `flask users create`, `flask api-keys create`, `flask bootstrap`, `flask demo`."""

import secrets

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from webapp.errors import ServiceError
from webapp.extensions import db

users_cli = AppGroup("users", help="Manage users.")
keys_cli = AppGroup("api-keys", help="Manage API keys.")


def _fail(exc: ServiceError):
    raise click.ClickException(exc.message) from exc


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="8 to 128 characters.")
@click.option("--workspace", "workspace_name", required=True, help="Created if it does not exist.")
@click.option("--role", type=click.Choice(["owner", "member"]), default=None)
def create_user_command(email: str, password: str, workspace_name: str, role: str | None):
    """Create a user (the first user of a new workspace is its owner)."""
    from webapp.services.users import create_user

    try:
        user = create_user(email=email, password=password, workspace_name=workspace_name, role=role)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"Created {user.role} {user.email} in workspace '{workspace_name}'.")


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--password", required=True)
def set_password_command(email: str, password: str):
    """Set a user's password; their existing sessions end."""
    from webapp.models import User
    from webapp.schemas.common import normalize_email
    from webapp.services.users import change_password

    try:
        user = db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    try:
        change_password(user, password=password)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"Password changed for {user.email}.")


@keys_cli.command("create")
@click.option("--user", "email", required=True, help="Email of the user the key belongs to.")
@click.option("--name", required=True, help="A label, e.g. 'CRM sync'.")
def create_key_command(email: str, name: str):
    """Create an API key. The key is printed once, alone on the last line."""
    from webapp.services.api_keys import create_api_key_for_user

    try:
        api_key, plaintext = create_api_key_for_user(email=email, name=name)
    except ServiceError as exc:
        _fail(exc)
    click.echo(f"Created API key '{api_key.name}' ({api_key.prefix}). Store it now: it is not shown again.")
    click.echo(plaintext)


@click.command("bootstrap")
@with_appcontext
def bootstrap_command():
    """First run only: create a demo workspace, an owner and an API key, and print them."""
    from webapp.models import User
    from webapp.services.api_keys import create_api_key_for_user
    from webapp.services.users import create_user

    if db.session.scalar(sa.select(sa.func.count()).select_from(User)):
        click.echo("Drumbeat is set up. Log in at http://127.0.0.1:5000 with your account.")
        return
    password = secrets.token_urlsafe(12)
    user = create_user(email="owner@example.com", password=password, workspace_name="Demo")
    _, plaintext = create_api_key_for_user(email=user.email, name="first key")
    click.echo("Drumbeat is ready. Log in at http://127.0.0.1:5000")
    click.echo(f"  email:    {user.email}")
    click.echo(f"  password: {password}")
    click.echo("API key (shown once; create more with `flask api-keys create`):")
    click.echo(plaintext)


@click.command("demo")
@with_appcontext
@click.option("--workspace", "workspace_name", default="Demo", show_default=True)
@click.option("--contacts", "contact_count", default=3000, show_default=True)
@click.option("--seed", default=7, show_default=True)
def demo_command(workspace_name: str, contact_count: int, seed: int):
    """Fill a workspace with realistic campaigns, contacts, enrollments and 30 days of events."""
    from webapp.services.demo import fill_demo_workspace

    summary = fill_demo_workspace(workspace_name, contacts=contact_count, seed=seed)
    click.echo(summary)


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Do all work due now and read every mailbox once, then exit.")
def worker_command(once: bool):
    """Run the campaign worker: sends due steps, reads the mailboxes, creates tasks, reaps expired claims."""
    from datetime import timedelta

    from flask import current_app

    from webapp.worker import Worker

    if once:
        report = Worker(current_app._get_current_object(), read_every=timedelta(0)).run_once()
        click.echo(
            f"sent={report.sent} failed={report.failed} retried={report.retried} unknown={report.unknown} "
            f"tasks={report.tasks} completed={report.completed} reaped={report.reaped} released={report.released}"
        )
        _echo_inbox(report.inbox)
        return
    Worker(current_app._get_current_object()).run_forever()


@click.command("inbox")
@with_appcontext
@click.option("--once", is_flag=True, required=True, help="Read every mailbox once, then exit.")
def inbox_command(once: bool):
    """Read the mailboxes' new messages (replies, out-of-office answers, bounces) without sending.
    `flask worker` does this too, every INBOX_POLL_SECONDS."""
    from datetime import timedelta

    from webapp.services.inbox import read_due_mailboxes

    report = read_due_mailboxes(every=timedelta(0))
    _echo_inbox(report)
    if report.errors:
        raise SystemExit(1)


def _echo_inbox(report) -> None:
    if report is None:
        return
    click.echo(
        f"mailboxes={report.mailboxes} messages={report.messages} replies={report.replies} "
        f"auto_replies={report.auto_replies} bounces={report.bounces} unmatched={report.unmatched}"
    )
    for error in report.errors:
        click.echo(f"error: {error}", err=True)


@click.group("secrets")
def secrets_cli():
    """Secrets stored encrypted (mailbox passwords)."""


@secrets_cli.command("rotate")
@with_appcontext
def rotate_secrets_command():
    """Encrypt every stored secret again under the first key of ENCRYPTION_KEY (see README)."""
    from webapp.services.mailboxes import rotate_secrets

    click.echo(f"re-encrypted {rotate_secrets()} secrets under the first ENCRYPTION_KEY")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(bootstrap_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(inbox_command)
    app.cli.add_command(secrets_cli)
