"""The send policy: when a message may go out, and why it waits.

This is the only place that does send-window, holiday, minimum-gap, daily-cap, step-delay and
retry-backoff arithmetic. The worker (claiming and recording), the "what goes out when" preview
and the dashboard all ask `plan`; nothing else computes a send time.

Everything here is pure: plain values in, timezone-aware UTC datetimes out, no clock, no database
and no randomness (callers pass `now`, the sender's usage and a jitter fraction).

The rules, in the order `plan` applies them (it repeats them until none moves the time):

- **Step delay**: a step is due its `delay_days` and `delay_hours` after the previous action, as
  an exact duration (a day is 24 hours), whatever the clocks do meanwhile (`step_due`).
- **Retry**: attempt n >= 2 of a message waits `RETRY_BACKOFF[n - 2]` seconds (the last value
  for later attempts), stretched by up to a quarter by `jitter` (0-1) so that many failed sends
  do not retry in lockstep.
- **Send window** (`{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00", "timezone": ...}`,
  or None for any time): hours are local to the contact's zone, else the window's `timezone`,
  else the campaign's `timezone`, else UTC (names that are not IANA zones are skipped).
  A window is the half-open interval [start, end); when end < start it crosses midnight (a
  Friday 22:00-06:00 window runs until Saturday 06:00) and belongs to the local date it opens on:
  `days` (ISO weekdays, 1 = Monday) and holidays are checked against that date.
  DST gap: a local time that does not exist that day (02:30 when clocks jump from 02:00 to 03:00)
  means the first instant after the gap; a window wholly inside the gap does not happen that day.
  DST fold: a local time that happens twice means its first occurrence, still on summer time.
- **Holidays** (`skip_holidays`, a country code such as "US" or "DE-BY"): a window that opens on
  a public holiday of that country, on the contact's local date, does not happen; without a
  window the whole local day is skipped.
- **Minimum gap** (`min_gap_seconds`, the mailbox's when the campaign sends from mailboxes): a
  sender sends at least this long after its previous send, in any campaign.
- **Daily cap** (`daily_cap`, or the mailbox's, ramp-up included: `ramp_cap`): a sender sends at
  most this many messages per sender day, in all campaigns together. **A sender's day is the
  local date in the sender's zone**: the workspace's time zone (Settings, sender defaults), UTC
  when it has none. It is the same day for every contact, wherever they are. When the day is full
  the send moves to the start of the sender's next day, then into the contact's window again.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from webapp.engine.holidays import check_country, is_holiday

# Long enough for a one-day-a-week window around a year of holidays and full caps.
HORIZON_DAYS = 400
DEFAULT_DAYS = (1, 2, 3, 4, 5)
# Seconds to wait before the 2nd, 3rd, ... attempt after a temporary failure.
RETRY_BACKOFF = (60, 300, 900, 3600, 4 * 3600)
RETRY_JITTER = 0.25
# How often a send waiting for its mailbox (paused or failing) looks again.
MAILBOX_RECHECK = timedelta(minutes=10)


class NoSendTime(ValueError):
    """No allowed instant exists within HORIZON_DAYS (e.g. every day's cap is used up)."""


class Delay(StrEnum):
    """Why a send waits past its due time."""

    RETRY = "retrying after a temporary failure"
    WINDOW = "outside the send window"
    HOLIDAY = "public holiday"
    GAP = "minimum gap between sends"
    CAP = "daily cap reached"
    MAILBOX_PAUSED = "its mailbox is paused"
    MAILBOX_FAILING = "its mailbox is failing: see Mailboxes"
    MAILBOX_RESTING = "its mailbox's server keeps failing: trying again soon"
    NO_MAILBOX = "none of the campaign's mailboxes is active"
    AWAY = "out of office: waits for the return date of their auto-reply"


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


@dataclass(frozen=True)
class Rules:
    """The timing rules of one campaign: the policy's part of its effective settings."""

    window: Window | None = None
    timezone: str | None = None  # the campaign's zone: for contacts without one
    holidays: str | None = None  # a normalized country code
    daily_cap: int | None = None
    min_gap_seconds: int | None = None
    sender_timezone: str | None = None  # the zone the sender's days are counted in
    # A mailbox's ramp-up: (messages on the first day, more each day after, the first day).
    ramp: tuple[int, int, date] | None = None

    @classmethod
    def from_settings(cls, settings: Mapping, *, sender_timezone: str | None = None) -> "Rules":
        """Rules from campaign settings (`send_window`, `timezone`, `skip_holidays`, `daily_cap`,
        `min_gap_seconds`). Raises ValueError for a malformed window or an unknown country."""
        country = settings.get("skip_holidays")
        return cls(
            window=parse_window(settings.get("send_window")),
            timezone=settings.get("timezone"),
            holidays=check_country(country) if country else None,
            daily_cap=settings.get("daily_cap") or None,
            min_gap_seconds=settings.get("min_gap_seconds") or None,
            sender_timezone=sender_timezone,
        )

    def cap_on(self, day: date) -> int | None:
        """The sender's cap on its day `day`, ramp-up included."""
        if self.ramp is None:
            return self.daily_cap
        start, increase, started_on = self.ramp
        return ramp_cap(self.daily_cap, start=start, increase=increase, started_on=started_on, day=day)

    def contact_zone(self, contact_timezone: str | None) -> ZoneInfo:
        """The zone a contact's window is read in: theirs, else the window's, else the campaign's, else UTC."""
        return resolve_timezone(contact_timezone, self.window.timezone if self.window else None, self.timezone)

    @property
    def sender_zone(self) -> ZoneInfo:
        return resolve_timezone(self.sender_timezone)

    def sender_day(self, moment: datetime) -> date:
        """The sender's day that `moment` falls on (what the daily cap counts)."""
        return _utc(moment).astimezone(self.sender_zone).date()

    def sender_day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """When the sender's day `day` begins and ends, in UTC (23 or 25 hours apart across a DST change)."""
        zone = self.sender_zone
        return local_to_utc(day, time(0), zone), local_to_utc(day + timedelta(days=1), time(0), zone)


@dataclass
class SenderUsage:
    """What a sender has used: messages per sender day (sent or on their way) and its last send.
    A day missing from `per_day` is asked of `count` once (the caller's ledger), else it is 0;
    the last send is asked of `last` once, the first time a gap needs it."""

    per_day: dict[date, int] = field(default_factory=dict)
    last_sent_at: datetime | None = None
    count: Callable[[date], int] | None = None
    last: Callable[[], datetime | None] | None = None

    def sent_on(self, day: date) -> int:
        if day not in self.per_day:
            self.per_day[day] = self.count(day) if self.count else 0
        return self.per_day[day]

    def last_send(self) -> datetime | None:
        if self.last is not None:
            loaded, self.last = self.last(), None
            if loaded is not None and (self.last_sent_at is None or loaded > self.last_sent_at):
                self.last_sent_at = loaded
        return self.last_sent_at

    def record(self, at: datetime, rules: Rules) -> None:
        """Count one more send at `at`."""
        day = rules.sender_day(at)
        self.per_day[day] = self.sent_on(day) + 1
        if self.last_sent_at is None or at > self.last_sent_at:
            self.last_sent_at = at


@dataclass(frozen=True)
class Plan:
    """When a message may go out, and why it waits past its due time (in the order met)."""

    at: datetime
    delays: tuple[Delay, ...] = ()

    @property
    def reason(self) -> str | None:
        return "; ".join(self.delays) or None


def ramp_cap(
    cap: int | None, *, start: int | None, increase: int | None, started_on: date | None, day: date
) -> int | None:
    """A mailbox's daily cap on `day` during a ramp-up: `start` on `started_on`, `increase` more each
    day after, never above `cap` (when there is one). Without a ramp, `cap` itself."""
    if not start or not increase or started_on is None:
        return cap
    ramped = start + increase * max(0, (day - started_on).days)
    return ramped if cap is None else min(cap, ramped)


def step_due(previous: datetime, step) -> datetime:
    """When `step` (anything with `delay_days` and `delay_hours`) is due after an action at `previous`."""
    return _utc(previous) + timedelta(days=step.delay_days, hours=step.delay_hours)


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


def sender_unavailable(now: datetime, delay: Delay, *, until: datetime | None = None) -> Plan:
    """When to look again at a send whose mailbox cannot send now (paused, failing, resting): at
    `until` when the wait has an end, else MAILBOX_RECHECK from `now`."""
    return Plan(max(until or _utc(now) + MAILBOX_RECHECK, _utc(now)), (delay,))


def until_back(due: datetime, back_on: date, zone: ZoneInfo | str | None) -> Plan:
    """A contact's out-of-office answer named `back_on` as the day they return: their next step
    waits until that day starts in their zone (`zone`), then the other rules apply as usual."""
    back = local_to_utc(back_on, time(0), _zone(zone))
    if back <= _utc(due):
        return Plan(_utc(due), ())
    return Plan(back, (Delay.AWAY,))


def retry_delay(attempt: int, jitter: float = 0.0) -> timedelta:
    """How long attempt number `attempt` (2 = the first retry) waits after the failure before it.
    `jitter` in [0, 1] stretches the wait by up to RETRY_JITTER of it."""
    if not 0 <= jitter <= 1:
        raise ValueError("jitter is a fraction between 0 and 1")
    if attempt < 2:
        return timedelta(0)
    base = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) + 1) - 2]
    return timedelta(seconds=round(base * (1 + RETRY_JITTER * jitter)))


def plan(
    due: datetime,
    *,
    now: datetime,
    rules: Rules,
    contact_timezone: str | None = None,
    usage: SenderUsage | None = None,
    attempt: int = 1,
    jitter: float = 0.0,
) -> Plan:
    """The earliest instant at or after `due` (and `now`) at which a message may go out.

    `rules` are the campaign's, `contact_timezone` the contact's zone (None or an unknown name
    falls back, see the module docstring), `usage` the sender's usage (None: caps and gaps are
    not checked, e.g. for a step that is not an email), `attempt` the attempt about to be made
    (a retry waits its backoff after `due`, the failure's time) and `jitter` the retry's jitter.
    The result satisfies every rule at once. Raises ValueError for naive datetimes and
    `NoSendTime` when nothing fits within HORIZON_DAYS.
    """
    moment = max(_utc(due), _utc(now))
    delays: list[Delay] = []
    if attempt > 1:
        moment = max(_utc(due) + retry_delay(attempt, jitter), moment)
        delays.append(Delay.RETRY)
    if not 0 <= jitter <= 1:
        raise ValueError("jitter is a fraction between 0 and 1")
    zone = rules.contact_zone(contact_timezone)
    gap = timedelta(seconds=rules.min_gap_seconds or 0)
    last_sent = usage.last_send() if usage is not None and gap else None
    last_sent = _utc(last_sent) if last_sent is not None else None
    horizon = moment + timedelta(days=HORIZON_DAYS)
    # Each rule only moves the time forward, so repeating them reaches a time that satisfies them all.
    while moment <= horizon:
        before = moment
        moment = _into_window(moment, rules, zone, delays)
        if last_sent is not None and gap and last_sent + gap > moment:
            moment = last_sent + gap
            _note(delays, Delay.GAP)
            continue
        if usage is not None and (rules.daily_cap or rules.ramp):
            day = rules.sender_day(moment)
            if usage.sent_on(day) >= rules.cap_on(day):
                moment = local_to_utc(day + timedelta(days=1), time(0), rules.sender_zone)
                _note(delays, Delay.CAP)
                continue
        if moment == before:
            return Plan(moment, tuple(delays))
    raise NoSendTime(f"no time within {HORIZON_DAYS} days satisfies the send window, the gap and the daily cap")


def _into_window(moment: datetime, rules: Rules, zone: ZoneInfo, delays: list[Delay]) -> datetime:
    opened = next_send_time(moment, window=rules.window, tz=zone, holidays_country=rules.holidays)
    if opened == moment:
        return moment
    # Name the cause: the window alone, a holiday alone, or both.
    without_holidays = next_send_time(moment, window=rules.window, tz=zone) if rules.holidays else opened
    if without_holidays > moment:
        _note(delays, Delay.WINDOW)
    if without_holidays < opened:
        _note(delays, Delay.HOLIDAY)
    return opened


def _note(delays: list[Delay], delay: Delay) -> None:
    if delay not in delays:
        delays.append(delay)


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
