"""Times on pages, in the signed-in user's time zone: the one place that formats them.

Templates call the `localtime` filter (`{{ event.occurred_at | localtime }}`); it writes a
`<time>` element whose `datetime` attribute stays UTC (ISO 8601, as the API gives it), whose text
is in the user's zone (Settings, Your profile; UTC by default) followed by the zone's abbreviation,
and whose title names the IANA zone and gives the UTC time, so no reader has to guess.
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Flask, g
from flask_login import current_user
from markupsafe import Markup, escape

FORMATS = {"datetime": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "date": "%Y-%m-%d", "day": "%d %b %Y"}


def user_zone() -> ZoneInfo:
    """The signed-in user's zone (UTC for anyone else), read once per request."""
    zone = g.get("user_zone")
    if zone is None:
        name = current_user.timezone if current_user and current_user.is_authenticated else "UTC"
        try:
            zone = ZoneInfo(name or "UTC")
        except (ValueError, KeyError):
            zone = ZoneInfo("UTC")
        g.user_zone = zone
    return zone


def localtime(value: datetime | None, style: str = "datetime", empty: str = "—") -> Markup:
    """`value` (an aware UTC datetime) as a `<time>` element in the user's zone; `style` is one of
    FORMATS (date styles name no zone, but the date is still the user's); `empty` when None."""
    if value is None:
        return Markup(escape(empty))
    if not isinstance(value, datetime):
        if isinstance(value, date):
            return Markup('<time datetime="{0}">{0}</time>').format(value.isoformat())
        raise TypeError(f"localtime needs a datetime, not {type(value).__name__}")
    utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    zone = user_zone()
    local = utc.astimezone(zone)
    text = local.strftime(FORMATS[style])
    if style in ("datetime", "seconds"):
        text = f"{text} {local.tzname()}"
    title = f"{zone.key}; {utc.strftime('%Y-%m-%d %H:%M')} UTC"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(utc.isoformat(), title, text)


def init_times(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.globals["user_zone"] = user_zone
