"""When each step of an enrollment is due, and when a message may actually go out.

Everything here is pure: plain values in, timezone-aware UTC datetimes out, no clock and no database
(the caller passes `earliest`, counts and a `random.Random`). The worker's usual calls are:

- ``next_due(previous, step, settings=..., contact_tz=...)`` when an enrollment advances;
- ``plan_send(now_or_due, settings=..., contact_tz=..., last_sent_at=..., sent_on_day=...)`` when it
  claims work: window, holidays, minimum gap and daily cap together;
- the building blocks `next_send_time`, `apply_daily_cap`, `apply_min_gap`, `add_jitter`,
  `retry_backoff`, `local_day_start` and `local_to_utc` when it needs one rule on its own.

Send window rules (``{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00", "timezone": ...}``,
or None for any time):

- Hours are local to a time zone: the contact's, else the window's ``timezone``, else the campaign's
  ``timezone`` setting, else UTC (`plan_send`/`next_due` resolve this; invalid names are skipped).
- A window is the half-open interval [start, end). When end < start it crosses midnight: a Friday
  22:00-06:00 window runs until Saturday 06:00.
- A window belongs to the local date it opens on: ``days`` (ISO weekdays, 1 = Monday) and holidays
  are checked against that date.
- DST gap: a local time that does not exist that day (02:30 when clocks jump from 02:00 to 03:00)
  means the first instant after the gap, i.e. 03:00. A window that lies wholly inside the gap does
  not happen that day.
- DST fold: a local time that happens twice (02:30 when clocks fall back from 03:00 to 02:00) means
  the first occurrence, still on summer time.
"""

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from webapp.engine.holidays import check_country, is_holiday

# Long enough for a one-day-a-week window around a year of holidays and full caps.
HORIZON_DAYS = 400
DEFAULT_DAYS = (1, 2, 3, 4, 5)


class NoSendTime(ValueError):
    """No allowed instant exists within HORIZON_DAYS (e.g. every day's cap is used up)."""


@dataclass(frozen=True)
class Window:
    """A parsed send window. `timezone` is the window's own fallback zone name, if it has one."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str | None = None

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


def step_delay(step) -> timedelta:
    """The wait configured on a step (anything with `delay_days` and `delay_hours`)."""
    return timedelta(days=step.delay_days, hours=step.delay_hours)


def next_due(previous: datetime, step, *, settings: Mapping | None = None, contact_tz: str | None = None) -> datetime:
    """The earliest time `step` may run after the previous action at `previous`.

    Without `settings` this is just `previous` plus the step's delay. With campaign `settings` the result
    is also moved into the send window (in the contact's zone, see the module docstring) and past
    holidays (`skip_holidays`). Caps and gaps depend on what else is sent: `plan_send` applies them.
    """
    due = previous + step_delay(step)
    if settings is None:
        return due
    window = parse_window(settings.get("send_window"))
    zone = resolve_timezone(contact_tz, window.timezone if window else None, settings.get("timezone"))
    return next_send_time(due, window=window, tz=zone, holidays_country=settings.get("skip_holidays"))


def resolve_timezone(*names: str | None) -> ZoneInfo:
    """The first of `names` that is a known IANA zone; UTC if none is. Never raises."""
    for name in names:
        if isinstance(name, ZoneInfo):
            return name
        if name:
            try:
                return ZoneInfo(name)
            except (ValueError, LookupError):
                continue
    return ZoneInfo("UTC")


def parse_window(window) -> Window | None:
    """A `Window` from a settings dict (or an object with the same attributes, e.g. the pydantic model).

    Missing keys take the schema defaults (weekdays, 09:00-17:00). Raises ValueError for days outside
    1-7, an empty day list, times that are not "HH:MM", or start == end.
    """
    if window is None or isinstance(window, Window):
        return window
    get = window.get if isinstance(window, Mapping) else lambda key, default=None: getattr(window, key, default)
    days = get("days", None)
    days = DEFAULT_DAYS if days is None else days
    if not days or any(not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 7 for day in days):
        raise ValueError("send window days must be ISO weekdays 1-7 (1 = Monday), at least one")
    start, end = _clock(get("start", None) or "09:00"), _clock(get("end", None) or "17:00")
    if start == end:
        raise ValueError("send window start and end must differ")
    return Window(frozenset(days), start, end, get("timezone", None) or None)


def local_to_utc(day: date, at: time, tz: ZoneInfo | str) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz`, by the module's DST rules:
    a time inside a gap means the end of the gap; a time inside a fold means its first occurrence."""
    zone = _zone(tz)
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # `wall` falls in a gap. With fold=0 and fold=1 it maps to the instants a gap's length apart that
    # bracket the transition; find the transition by bisection on whole seconds.
    low, high = sorted((int(first.timestamp()), int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())))
    offset_before = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def local_day_start(moment: datetime, tz: ZoneInfo | str | None) -> datetime:
    """The UTC instant at which the local date of `moment` begins in `tz`: local midnight, or the end
    of a DST gap when clocks jump at midnight. Raises ValueError for a naive `moment` or unknown zone."""
    zone = _zone(tz)
    return local_to_utc(_utc(moment).astimezone(zone).date(), time(0), zone)


def next_send_time(
    earliest: datetime,
    *,
    window,
    tz: ZoneInfo | str | None = None,
    holidays_country: str | None = None,
) -> datetime:
    """The earliest instant >= `earliest` inside the send window, in UTC.

    `window` is a settings dict, a `Window` or None (any time). Local times are in `tz`, else the
    window's own timezone, else UTC. When `holidays_country` is set ("US", "DE-BY"...), windows that open
    on a public holiday are skipped (with no window, a holiday is skipped to the next local midnight).

    Raises ValueError for a naive `earliest`, an unknown zone or country, or a malformed window, and
    `NoSendTime` when nothing fits within HORIZON_DAYS.
    """
    earliest = _utc(earliest)
    spec = parse_window(window)
    zone = _zone(tz if tz else (spec.timezone if spec else None))
    country = check_country(holidays_country) if holidays_country else None
    local_day = earliest.astimezone(zone).date()

    if spec is None:
        for offset in range(HORIZON_DAYS):
            day = local_day + timedelta(days=offset)
            if not is_holiday(day, country):
                return earliest if offset == 0 else local_to_utc(day, time(0), zone)
        raise NoSendTime("every day within the horizon is a holiday")

    # Start a day early: yesterday's window may cross midnight and still be open.
    for offset in range(-1, HORIZON_DAYS):
        day = local_day + timedelta(days=offset)
        if day.isoweekday() not in spec.days or is_holiday(day, country):
            continue
        opens = local_to_utc(day, spec.start, zone)
        closes = local_to_utc(day + timedelta(days=1) if spec.crosses_midnight else day, spec.end, zone)
        if closes <= earliest or closes <= opens:
            continue
        return max(opens, earliest)
    raise NoSendTime(f"no send window opens within {HORIZON_DAYS} days")


def apply_daily_cap(
    candidate: datetime,
    *,
    cap: int | None,
    sent_on_day: Mapping | Callable[[date], int],
    tz: ZoneInfo | str | None = None,
    window=None,
    window_tz: ZoneInfo | str | None = None,
    holidays_country: str | None = None,
) -> datetime:
    """`candidate`, or the first allowed instant of a later day whose cap is not used up.

    Days are local dates in `tz` (the sender's day: the campaign's zone). `sent_on_day` gives the number
    of messages this sender already sent or scheduled on a local date: a callable, or a mapping keyed by
    `date` or ISO string ("2026-03-02"); missing days count 0. When a day is full the send moves to that
    zone's next midnight, then into `window` (in `window_tz`, default `tz`) and past holidays.
    `cap` None means no cap. Raises ValueError for cap < 1 and `NoSendTime` if every day is full.
    """
    if cap is None:
        return _utc(candidate)
    if cap < 1:
        raise ValueError("a daily cap must be at least 1")
    zone = _zone(tz)
    count = (
        sent_on_day if callable(sent_on_day) else lambda day: sent_on_day.get(day, sent_on_day.get(day.isoformat(), 0))
    )
    moment = _utc(candidate)
    for _ in range(HORIZON_DAYS):
        day = moment.astimezone(zone).date()
        if count(day) < cap:
            return moment
        moment = next_send_time(
            local_to_utc(day + timedelta(days=1), time(0), zone),
            window=window,
            tz=window_tz or zone,
            holidays_country=holidays_country,
        )
    raise NoSendTime(f"the daily cap of {cap} is used up on every day within {HORIZON_DAYS} days")


def apply_min_gap(
    candidate: datetime,
    *,
    last_sent_at: datetime | None,
    min_gap_seconds: int | None,
    jitter_seconds: int = 0,
    rng: random.Random | None = None,
) -> datetime:
    """`candidate`, or later so that it is at least `min_gap_seconds` (plus up to `jitter_seconds` of random
    jitter from `rng`) after `last_sent_at`, the sender's previous send. No previous send or gap: unchanged."""
    candidate = _utc(candidate)
    if last_sent_at is None or not min_gap_seconds:
        return candidate
    gap = timedelta(seconds=min_gap_seconds) + _jitter(jitter_seconds, rng)
    return max(candidate, _utc(last_sent_at) + gap)


def add_jitter(moment: datetime, *, max_seconds: int, rng: random.Random | None = None) -> datetime:
    """`moment` plus a whole number of seconds drawn uniformly from [0, max_seconds] by `rng`
    (the `random` module when None; tests pass a seeded `random.Random`)."""
    return _utc(moment) + _jitter(max_seconds, rng)


def retry_backoff(
    attempt: int, *, base_seconds: int = 300, max_seconds: int = 6 * 3600, rng: random.Random | None = None
) -> timedelta:
    """How long to wait before retry number `attempt` (1 = first retry) after a transient failure.

    Exponential (base, 2x base, 4x base...) up to `max_seconds`, with "equal jitter": the wait is drawn
    from [half, full] of that value so that many failed sends do not retry in lockstep.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(max_seconds, base_seconds * 2 ** min(attempt - 1, 32))
    return timedelta(seconds=(rng or random).randint(ceiling // 2, ceiling))


def plan_send(
    earliest: datetime,
    *,
    settings: Mapping | None = None,
    contact_tz: str | None = None,
    last_sent_at: datetime | None = None,
    sent_on_day: Mapping | Callable[[date], int] | None = None,
    jitter_seconds: int = 0,
    rng: random.Random | None = None,
) -> datetime:
    """The earliest instant >= `earliest` at which a message may go out, from campaign `settings`.

    Reads the CampaignSettings keys `send_window`, `timezone`, `skip_holidays`, `min_gap_seconds` and
    `daily_cap`. The window is in the contact's zone (`contact_tz`, else the window's, else the
    campaign's, else UTC); the cap counts the sender's days in the campaign's zone (`timezone`, else
    the window's, else UTC) using `sent_on_day` (skipped when None). `jitter_seconds` of random delay
    from `rng` is added to `earliest` first. The result satisfies every rule at once.
    Raises ValueError for malformed settings and `NoSendTime` when nothing fits.
    """
    settings = settings or {}
    window = parse_window(settings.get("send_window"))
    window_zone_name = window.timezone if window else None
    window_zone = resolve_timezone(contact_tz, window_zone_name, settings.get("timezone"))
    cap_zone = resolve_timezone(settings.get("timezone"), window_zone_name)
    country = settings.get("skip_holidays")
    cap = settings.get("daily_cap")

    moment = add_jitter(earliest, max_seconds=jitter_seconds, rng=rng) if jitter_seconds else _utc(earliest)
    # Each rule only moves the time forward, so repeating them reaches a time that satisfies all of them;
    # in practice the second round changes nothing.
    for _ in range(8):
        planned = next_send_time(moment, window=window, tz=window_zone, holidays_country=country)
        planned = apply_min_gap(planned, last_sent_at=last_sent_at, min_gap_seconds=settings.get("min_gap_seconds"))
        planned = next_send_time(planned, window=window, tz=window_zone, holidays_country=country)
        if cap and sent_on_day is not None:
            planned = apply_daily_cap(
                planned,
                cap=cap,
                sent_on_day=sent_on_day,
                tz=cap_zone,
                window=window,
                window_tz=window_zone,
                holidays_country=country,
            )
        if planned == moment:
            break
        moment = planned
    return moment


def _jitter(max_seconds: int, rng: random.Random | None) -> timedelta:
    if not max_seconds:
        return timedelta(0)
    if max_seconds < 0:
        raise ValueError("jitter must not be negative")
    return timedelta(seconds=(rng or random).randint(0, int(max_seconds)))


def _clock(value) -> time:
    try:
        hours, minutes = str(value).split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"send window times must be HH:MM (00:00-23:59), not {str(value)[:20]!r}") from None


def _zone(tz: ZoneInfo | str | None) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    if not tz:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(tz)
    except (ValueError, LookupError):
        raise ValueError(f"unknown time zone {str(tz)[:64]!r}") from None


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware datetimes")
    return moment.astimezone(UTC)
