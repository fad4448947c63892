"""The HTML dashboard: one blueprint per feature, all rendered server-side and enhanced by htmx.

Every feature blueprint except `auth` protects itself with `bp.before_request(require_login)`.
"""

import hashlib
from pathlib import Path

from flask import Flask, current_app, request, url_for


def register_web(app: Flask) -> None:
    from webapp.web import auth, dashboard

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    from webapp.web import inbox, outbox, settings, tasks

    app.register_blueprint(inbox.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(outbox.bp)
    from webapp.web import templates

    app.register_blueprint(templates.bp)
    from webapp.web import contacts, imports

    app.register_blueprint(contacts.bp)
    app.register_blueprint(imports.bp)
    from webapp.web import instances, readiness  # noqa: F401 (readiness adds pages to the campaigns' blueprint)

    app.register_blueprint(instances.bp)
    from webapp.web import campaign_steps

    app.register_blueprint(campaign_steps.bp)
    from webapp.web import mailboxes

    app.register_blueprint(mailboxes.bp)
    from webapp.schemas.analytics import RATE_BASES, of_step
    from webapp.web.times import init_times

    init_times(app)

    app.jinja_env.globals.update(
        rate_bases=RATE_BASES,
        of_step=of_step,
        asset_url=asset_url,
        url_with_query=url_with_query,
        forms=MacroLibrary("_macros/forms.html"),
        ui=MacroLibrary("_macros/ui.html"),
    )


class MacroLibrary:
    """A macro file as a Jinja global (`forms.field(...)`, `ui.status_badge(...)`).

    A global rather than `{% import %}`: jinja2-fragments renders a block without the top of its
    template, so an import outside the block would be undefined in the htmx fragment.
    """

    def __init__(self, template: str):
        self.template = template

    def __getattr__(self, name: str):
        return getattr(current_app.jinja_env.get_template(self.template).module, name)


def asset_url(filename: str) -> str:
    """The URL of a file under static/, with a content hash so browsers refetch it when it changes."""
    path = Path(current_app.static_folder) / filename
    try:
        stat = path.stat()
    except OSError:
        return url_for("static", filename=filename)
    cache = current_app.extensions.setdefault("drumbeat_assets", {})
    key = (filename, stat.st_mtime_ns, stat.st_size)
    if key not in cache:
        cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return url_for("static", filename=filename, v=cache[key])


def url_with_query(endpoint: str | None = None, **changes) -> str:
    """The current URL (or `endpoint`'s) with some query parameters replaced; a None value drops one."""
    args = request.args.to_dict(flat=False)
    for name, value in changes.items():
        if value is None:
            args.pop(name, None)
        else:
            args[name] = [str(value)]
    if endpoint is None:
        return url_for(request.endpoint, **(request.view_args or {}), **args)
    return url_for(endpoint, **args)


def errors_by_field(details: list[dict]) -> dict[str, list[str]]:
    """`ValidationFailed.details` as `{field: [messages]}`, for the form macros' `errors=`."""
    errors: dict[str, list[str]] = {}
    for detail in details:
        errors.setdefault(str(detail.get("field") or "__all__"), []).append(str(detail.get("message", "")))
    return errors
