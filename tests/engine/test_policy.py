from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.engine.holidays import check_country, holiday_dates, is_holiday, parse_country
from webapp.engine.policy import (
    HORIZON_DAYS,
    RETRY_BACKOFF,
    Delay,
    NoSendTime,
    Plan,
    Rules,
    SenderUsage,
    Window,
    local_day_start,
    local_to_utc,
    next_send_time,
    parse_window,
    plan,
    resolve_timezone,
    retry_delay,
    step_due,
)
from webapp.schemas.settings import SendWindow

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
WEEKDAYS_9_TO_5 = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


class TestLocalToUtc:
    def test_an_ordinary_time(self):
        assert local_to_utc(date(2026, 1, 15), time(9, 0), BERLIN) == utc(2026, 1, 15, 8, 0)
        assert local_to_utc(date(2026, 7, 15), time(9, 0), BERLIN) == utc(2026, 7, 15, 7, 0)

    @pytest.mark.parametrize(
        ("tz", "day", "at", "expected"),
        [
            # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:xx does not exist.
            (BERLIN, date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 0)),
            (BERLIN, date(2026, 3, 29), time(2, 0), utc(2026, 3, 29, 1, 0)),
            (BERLIN, date(2026, 3, 29), time(2, 59), utc(2026, 3, 29, 1, 0)),
            (BERLIN, date(2026, 3, 29), time(3, 0), utc(2026, 3, 29, 1, 0)),
            (BERLIN, date(2026, 3, 29), time(1, 59), utc(2026, 3, 29, 0, 59)),
            # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
            (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 0)),
        ],
    )
    def test_a_time_in_a_dst_gap_means_the_end_of_the_gap(self, tz, day, at, expected):
        assert local_to_utc(day, at, tz) == expected

    @pytest.mark.parametrize(
        ("tz", "day", "at", "expected"),
        [
            # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens at 00:30Z and 01:30Z.
            (BERLIN, date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),
            # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens at 05:30Z and 06:30Z.
            (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        ],
    )
    def test_a_time_in_a_dst_fold_means_its_first_occurrence(self, tz, day, at, expected):
        assert local_to_utc(day, at, tz) == expected

    def test_half_hour_zones_and_odd_transitions(self):
        # Lord Howe Island shifts by 30 minutes: 2026-10-04 02:00 -> 02:30 local.
        assert local_to_utc(date(2026, 10, 4), time(2, 15), "Australia/Lord_Howe") == local(
            "Australia/Lord_Howe", 2026, 10, 4, 2, 30
        ).astimezone(UTC)


class TestLocalDayStart:
    def test_it_is_local_midnight_in_utc(self):
        assert local_day_start(utc(2026, 3, 4, 23, 30), BERLIN) == utc(2026, 3, 4, 23, 0)
        assert local_day_start(utc(2026, 3, 4, 22, 30), BERLIN) == utc(2026, 3, 3, 23, 0)
        assert local_day_start(utc(2026, 3, 4, 3, 0), NEW_YORK) == utc(2026, 3, 3, 5, 0)
        assert local_day_start(utc(2026, 3, 4, 3, 0), None) == utc(2026, 3, 4)

    def test_a_day_whose_midnight_falls_in_a_dst_gap_starts_when_the_gap_ends(self):
        # Havana springs forward at midnight: 2026-03-08 00:00 CST -> 01:00 CDT (05:00Z).
        assert local_day_start(utc(2026, 3, 8, 17, 0), "America/Havana") == utc(2026, 3, 8, 5, 0)


class TestNextSendTime:
    def test_no_window_means_now(self):
        assert next_send_time(utc(2026, 3, 7, 3, 17), window=None) == utc(2026, 3, 7, 3, 17)

    def test_inside_the_window_it_is_unchanged(self):
        earliest = local(BERLIN, 2026, 3, 4, 11, 30).astimezone(UTC)
        assert next_send_time(earliest, window=WEEKDAYS_9_TO_5, tz=BERLIN) == earliest

    def test_before_the_window_it_waits_for_the_opening(self):
        earliest = local(BERLIN, 2026, 3, 4, 6, 0).astimezone(UTC)
        assert next_send_time(earliest, window=WEEKDAYS_9_TO_5, tz=BERLIN) == local(BERLIN, 2026, 3, 4, 9, 0)

    def test_the_end_of_the_window_is_exclusive(self):
        at_five = local(BERLIN, 2026, 3, 4, 17, 0).astimezone(UTC)
        assert next_send_time(at_five, window=WEEKDAYS_9_TO_5, tz=BERLIN) == local(BERLIN, 2026, 3, 5, 9, 0)
        just_before = at_five - timedelta(microseconds=1)
        assert next_send_time(just_before, window=WEEKDAYS_9_TO_5, tz=BERLIN) == just_before

    def test_weekends_are_skipped(self):
        friday_evening = local(BERLIN, 2026, 3, 6, 17, 30).astimezone(UTC)
        assert next_send_time(friday_evening, window=WEEKDAYS_9_TO_5, tz=BERLIN) == local(BERLIN, 2026, 3, 9, 9, 0)
        saturday = local(BERLIN, 2026, 3, 7, 10, 0).astimezone(UTC)
        assert next_send_time(saturday, window=WEEKDAYS_9_TO_5, tz=BERLIN) == local(BERLIN, 2026, 3, 9, 9, 0)

    def test_weekend_only_windows_work_too(self):
        window = {"days": [6, 7], "start": "10:00", "end": "12:00"}
        monday = utc(2026, 3, 2, 10, 0)
        assert next_send_time(monday, window=window) == utc(2026, 3, 7, 10, 0)

    def test_the_result_is_in_utc_whatever_the_input_zone(self):
        earliest = local(NEW_YORK, 2026, 3, 4, 6, 0)
        result = next_send_time(earliest, window=WEEKDAYS_9_TO_5, tz=NEW_YORK)
        assert result.tzinfo == UTC
        assert result == local(NEW_YORK, 2026, 3, 4, 9, 0)

    def test_business_hours_follow_the_clock_change(self):
        # Friday before the Berlin change opens at 08:00Z, the Monday after at 07:00Z.
        window = WEEKDAYS_9_TO_5
        assert next_send_time(utc(2026, 3, 27, 0, 0), window=window, tz=BERLIN) == utc(2026, 3, 27, 8, 0)
        assert next_send_time(utc(2026, 3, 27, 16, 0), window=window, tz=BERLIN) == utc(2026, 3, 30, 7, 0)

    class TestDstGap:
        SUNDAY_EARLY = {"days": [7], "start": "02:30", "end": "05:00"}

        def test_berlin_a_window_opening_in_the_gap_opens_when_the_gap_ends(self):
            saturday = utc(2026, 3, 28, 12, 0)
            assert next_send_time(saturday, window=self.SUNDAY_EARLY, tz=BERLIN) == local(BERLIN, 2026, 3, 29, 3, 0)
            # The Sunday before, the same window opens at 02:30 CET as usual.
            assert next_send_time(utc(2026, 3, 21, 12, 0), window=self.SUNDAY_EARLY, tz=BERLIN) == utc(
                2026, 3, 22, 1, 30
            )

        def test_new_york_a_window_opening_in_the_gap_opens_when_the_gap_ends(self):
            saturday = utc(2026, 3, 7, 12, 0)
            assert next_send_time(saturday, window=self.SUNDAY_EARLY, tz=NEW_YORK) == utc(2026, 3, 8, 7, 0)

        def test_a_window_closing_in_the_gap_closes_when_the_gap_ends(self):
            window = {"days": [7], "start": "01:00", "end": "02:30"}
            assert next_send_time(utc(2026, 3, 29, 0, 59), window=window, tz=BERLIN) == utc(2026, 3, 29, 0, 59)
            # 01:00Z is 03:00 CEST: the window has closed; next Sunday 01:00 CEST.
            assert next_send_time(utc(2026, 3, 29, 1, 0), window=window, tz=BERLIN) == local(BERLIN, 2026, 4, 5, 1, 0)

        def test_a_window_wholly_inside_the_gap_does_not_happen_that_day(self):
            window = {"days": [7], "start": "02:10", "end": "02:50"}
            result = next_send_time(utc(2026, 3, 28, 12, 0), window=window, tz=BERLIN)
            assert result == local(BERLIN, 2026, 4, 5, 2, 10)

    class TestDstFold:
        def test_berlin_a_window_opening_in_the_fold_opens_at_the_first_occurrence(self):
            window = {"days": [7], "start": "02:30", "end": "04:00"}
            assert next_send_time(utc(2026, 10, 24, 12, 0), window=window, tz=BERLIN) == utc(2026, 10, 25, 0, 30)

        def test_berlin_the_second_occurrence_is_still_inside_the_window(self):
            window = {"days": [7], "start": "02:30", "end": "04:00"}
            second = local(BERLIN, 2026, 10, 25, 2, 30, fold=1).astimezone(UTC)
            assert second == utc(2026, 10, 25, 1, 30)
            assert next_send_time(second, window=window, tz=BERLIN) == second

        def test_new_york_a_window_opening_in_the_fold_opens_at_the_first_occurrence(self):
            window = {"days": [7], "start": "01:30", "end": "03:00"}
            assert next_send_time(utc(2026, 10, 31, 12, 0), window=window, tz=NEW_YORK) == utc(2026, 11, 1, 5, 30)

        def test_a_window_ending_in_the_fold_ends_at_the_first_occurrence(self):
            window = {"days": [7], "start": "00:00", "end": "01:30"}
            # First 01:30 is 05:30Z; by 06:00Z (01:00 EST, the second pass) the window is over.
            assert next_send_time(utc(2026, 11, 1, 5, 29), window=window, tz=NEW_YORK) == utc(2026, 11, 1, 5, 29)
            assert next_send_time(utc(2026, 11, 1, 6, 0), window=window, tz=NEW_YORK) == local(
                NEW_YORK, 2026, 11, 8, 0, 0
            )

    class TestWindowsCrossingMidnight:
        NIGHTS = {"days": [1, 2, 3, 4, 5], "start": "22:00", "end": "06:00"}

        @pytest.mark.parametrize(
            ("earliest", "expected"),
            [
                # Tuesday 23:00: inside Tuesday's night.
                (utc(2026, 3, 3, 23, 0), utc(2026, 3, 3, 23, 0)),
                # Wednesday 03:00: still inside the window that opened Tuesday.
                (utc(2026, 3, 4, 3, 0), utc(2026, 3, 4, 3, 0)),
                # Wednesday 06:00: closed (end exclusive) until Wednesday 22:00.
                (utc(2026, 3, 4, 6, 0), utc(2026, 3, 4, 22, 0)),
                (utc(2026, 3, 4, 12, 0), utc(2026, 3, 4, 22, 0)),
                # Saturday 03:00 belongs to Friday's night, which is allowed.
                (utc(2026, 3, 7, 3, 0), utc(2026, 3, 7, 3, 0)),
                # Saturday 07:00: no Saturday or Sunday nights; Monday 22:00.
                (utc(2026, 3, 7, 7, 0), utc(2026, 3, 9, 22, 0)),
                # Monday 03:00 belongs to Sunday's night, which is not allowed.
                (utc(2026, 3, 9, 3, 0), utc(2026, 3, 9, 22, 0)),
            ],
        )
        def test_a_night_window_belongs_to_the_day_it_opens(self, earliest, expected):
            assert next_send_time(earliest, window=self.NIGHTS) == expected

        def test_in_a_local_zone(self):
            earliest = local(NEW_YORK, 2026, 3, 4, 4, 0).astimezone(UTC)
            assert next_send_time(earliest, window=self.NIGHTS, tz=NEW_YORK) == earliest
            later = local(NEW_YORK, 2026, 3, 4, 7, 0).astimezone(UTC)
            assert next_send_time(later, window=self.NIGHTS, tz=NEW_YORK) == local(NEW_YORK, 2026, 3, 4, 22, 0)

        def test_across_a_dst_change(self):
            # Saturday night before the Berlin change: 22:00 CET to 06:00 CEST is only 7 hours long.
            window = {"days": [6], "start": "22:00", "end": "06:00"}
            assert next_send_time(utc(2026, 3, 29, 3, 59), window=window, tz=BERLIN) == utc(2026, 3, 29, 3, 59)
            assert next_send_time(utc(2026, 3, 29, 4, 0), window=window, tz=BERLIN) == local(BERLIN, 2026, 4, 4, 22, 0)

    class TestHolidays:
        def test_christmas_2026_is_skipped_in_the_us(self):
            # 2026-12-25 is a Friday: Thursday evening's next slot is Monday 2026-12-28 09:00 EST.
            thursday_evening = local(NEW_YORK, 2026, 12, 24, 18, 0).astimezone(UTC)
            result = next_send_time(thursday_evening, window=WEEKDAYS_9_TO_5, tz=NEW_YORK, holidays_country="US")
            assert result == utc(2026, 12, 28, 14, 0)
            without = next_send_time(thursday_evening, window=WEEKDAYS_9_TO_5, tz=NEW_YORK)
            assert without == utc(2026, 12, 25, 14, 0)

        def test_observed_holidays_are_skipped(self):
            # 2026-07-04 is a Saturday, observed on Friday 2026-07-03.
            thursday_evening = local(NEW_YORK, 2026, 7, 2, 18, 0).astimezone(UTC)
            result = next_send_time(thursday_evening, window=WEEKDAYS_9_TO_5, tz=NEW_YORK, holidays_country="US")
            assert result == local(NEW_YORK, 2026, 7, 6, 9, 0)

        def test_a_subdivision_has_its_own_holidays(self):
            # Epiphany (2026-01-06, a Tuesday) is a holiday in Bavaria, not in Berlin.
            monday_evening = local(BERLIN, 2026, 1, 5, 18, 0).astimezone(UTC)
            bavaria = next_send_time(monday_evening, window=WEEKDAYS_9_TO_5, tz=BERLIN, holidays_country="DE-BY")
            berlin = next_send_time(monday_evening, window=WEEKDAYS_9_TO_5, tz=BERLIN, holidays_country="DE-BE")
            assert bavaria == local(BERLIN, 2026, 1, 7, 9, 0)
            assert berlin == local(BERLIN, 2026, 1, 6, 9, 0)

        def test_without_a_window_a_holiday_moves_to_the_next_local_midnight(self):
            christmas_morning = local(NEW_YORK, 2026, 12, 25, 10, 0).astimezone(UTC)
            result = next_send_time(christmas_morning, window=None, tz=NEW_YORK, holidays_country="US")
            assert result == local(NEW_YORK, 2026, 12, 26, 0, 0)

        def test_holidays_are_checked_on_the_local_date(self):
            # 2026-12-25 04:00Z is still Christmas Eve in New York.
            assert next_send_time(utc(2026, 12, 25, 4, 0), window=None, tz=NEW_YORK, holidays_country="US") == utc(
                2026, 12, 25, 4, 0
            )

        def test_an_unknown_country_is_an_error(self):
            with pytest.raises(ValueError, match="no holiday calendar"):
                next_send_time(utc(2026, 1, 1), window=None, holidays_country="XX")
            with pytest.raises(ValueError, match="country code"):
                next_send_time(utc(2026, 1, 1), window=None, holidays_country="Germany")

    def test_the_window_timezone_is_the_fallback_zone(self):
        window = {**WEEKDAYS_9_TO_5, "timezone": NEW_YORK}
        assert next_send_time(utc(2026, 3, 4, 12, 0), window=window) == utc(2026, 3, 4, 14, 0)
        assert next_send_time(utc(2026, 3, 4, 12, 0), window=window, tz=BERLIN) == utc(2026, 3, 4, 12, 0)

    def test_it_refuses_naive_times_and_unknown_zones(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            next_send_time(datetime(2026, 3, 4, 12, 0), window=None)
        with pytest.raises(ValueError, match="unknown time zone"):
            next_send_time(utc(2026, 3, 4), window=WEEKDAYS_9_TO_5, tz="Mars/Olympus")


class TestParseWindow:
    def test_defaults_are_weekdays_nine_to_five(self):
        assert parse_window({}) == Window(frozenset({1, 2, 3, 4, 5}), time(9), time(17), None)
        assert parse_window(None) is None

    def test_it_reads_the_pydantic_model_too(self):
        model = SendWindow(days=[6, 7], start="22:00", end="06:00", timezone=BERLIN)
        window = parse_window(model)
        assert window == Window(frozenset({6, 7}), time(22), time(6), BERLIN)
        assert window.crosses_midnight

    @pytest.mark.parametrize(
        "window",
        [
            {"days": []},
            {"days": [0]},
            {"days": [8]},
            {"days": ["1"]},
            {"start": "9:00"},
            {"start": "24:00"},
            {"end": "17:60"},
            {"start": "nine"},
            {"start": "10:00", "end": "10:00"},
        ],
    )
    def test_it_refuses_malformed_windows(self, window):
        with pytest.raises(ValueError):
            parse_window(window)


class TestHolidayCalendar:
    def test_parse_country(self):
        assert parse_country("US") == ("US", None)
        assert parse_country(" de-by ") == ("DE", "BY")
        for bad in ("", "USA", "D", "DE-", "DE-BAVARIA", None):
            with pytest.raises(ValueError):
                parse_country(bad)

    def test_check_country(self):
        assert check_country("de-by") == "DE-BY"
        with pytest.raises(ValueError):
            check_country("DE-ZZ")

    def test_dates(self):
        assert date(2026, 12, 25) in holiday_dates("US", 2026)
        assert is_holiday(date(2026, 12, 25), "US")
        assert not is_holiday(date(2026, 12, 24), "US")
        assert not is_holiday(date(2026, 12, 25), None)

    def test_resolve_timezone(self):
        assert resolve_timezone(None, "", "Bad/Zone", "Asia/Tokyo", BERLIN) == ZoneInfo("Asia/Tokyo")
        assert resolve_timezone(None, "../etc/passwd") == ZoneInfo("UTC")
        assert resolve_timezone() == ZoneInfo("UTC")


PARIS = "Europe/Paris"
LOS_ANGELES = "America/Los_Angeles"
LONDON = "Europe/London"
TOKYO = "Asia/Tokyo"
AUCKLAND = "Pacific/Auckland"
KIRITIMATI = "Pacific/Kiritimati"
RETRY, WINDOW, HOLIDAY, GAP, CAP = Delay.RETRY, Delay.WINDOW, Delay.HOLIDAY, Delay.GAP, Delay.CAP


def window(days, start: str, end: str) -> dict:
    return {"days": list(days), "start": start, "end": end}


def rules(send_window=None, *, tz=None, holidays=None, cap=None, gap=None, sender=None) -> Rules:
    values = {
        "send_window": send_window,
        "timezone": tz,
        "skip_holidays": holidays,
        "daily_cap": cap,
        "min_gap_seconds": gap,
    }
    return Rules.from_settings(values, sender_timezone=sender)


def used(*full_days: date, count: int = 1, last: datetime | None = None) -> SenderUsage:
    return SenderUsage({day: count for day in full_days}, last)


@dataclass(frozen=True)
class Case:
    due: datetime
    expected: datetime
    delays: tuple[Delay, ...] = ()
    now: datetime | None = None
    rules: Rules = field(default_factory=Rules)
    contact: str | None = None
    usage: SenderUsage | None = None
    attempt: int = 1
    jitter: float = 0.0

    def plan(self) -> Plan:
        return plan(
            self.due,
            now=self.now or self.due,
            rules=self.rules,
            contact_timezone=self.contact,
            usage=self.usage,
            attempt=self.attempt,
            jitter=self.jitter,
        )


def case(name: str, due: datetime, expected: datetime, *delays: Delay, **options):
    return pytest.param(Case(due, expected, delays, **options), id=name)


def assert_planned(case: Case) -> None:
    result = case.plan()
    assert result == Plan(case.expected, case.delays)
    assert result.at.tzinfo is UTC


SUNDAY_0230_TO_0500 = window([7], "02:30", "05:00")
SUNDAY_0100_TO_0500 = window([7], "01:00", "05:00")
SUNDAY_0230_TO_0400 = window([7], "02:30", "04:00")


class TestPlanAcrossDstChanges:
    @pytest.mark.parametrize(
        "case",
        [
            case(
                "paris spring: a window opening at 02:30 opens when the gap ends, 03:00 CEST",
                utc(2026, 3, 28, 12, 0),
                utc(2026, 3, 29, 1, 0),
                WINDOW,
                rules=rules(SUNDAY_0230_TO_0500, tz=PARIS),
            ),
            case(
                "paris spring: a window wholly inside the gap waits for the next sunday",
                utc(2026, 3, 28, 12, 0),
                utc(2026, 4, 5, 0, 10),
                WINDOW,
                rules=rules(window([7], "02:10", "02:50"), tz=PARIS),
            ),
            case(
                "paris spring: 01:59 CET, just before the change, is inside an open window",
                utc(2026, 3, 29, 0, 59),
                utc(2026, 3, 29, 0, 59),
                rules=rules(SUNDAY_0100_TO_0500, tz=PARIS),
            ),
            case(
                "paris spring: the instant of the change, 03:00 CEST, is inside an open window",
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 29, 1, 0),
                rules=rules(SUNDAY_0100_TO_0500, tz=PARIS),
            ),
            case(
                "paris spring: a window open across the change still closes at 05:00 CEST",
                utc(2026, 3, 29, 3, 0),
                utc(2026, 4, 4, 23, 0),
                WINDOW,
                rules=rules(SUNDAY_0100_TO_0500, tz=PARIS),
            ),
            case(
                "paris spring: a full saturday moves to sunday's midnight, still CET",
                utc(2026, 3, 28, 15, 0),
                utc(2026, 3, 28, 23, 0),
                CAP,
                rules=rules(cap=1, sender=PARIS),
                usage=used(date(2026, 3, 28)),
            ),
            case(
                "paris spring: a full sunday moves to monday's midnight, 23 hours later",
                utc(2026, 3, 28, 23, 0),
                utc(2026, 3, 29, 22, 0),
                CAP,
                rules=rules(cap=1, sender=PARIS),
                usage=used(date(2026, 3, 29)),
            ),
            case(
                "paris spring: a follow-up 3 days after friday 10:00 CET is due monday 11:00 CEST, after the window",
                step_due(utc(2026, 3, 27, 9, 0), SimpleNamespace(delay_days=3, delay_hours=0)),
                utc(2026, 3, 31, 7, 0),
                WINDOW,
                rules=rules(window([1, 2, 3, 4, 5], "09:00", "10:30"), tz=PARIS),
            ),
            case(
                "paris fall: a window opening at 02:30 opens at the first 02:30, CEST",
                utc(2026, 10, 24, 12, 0),
                utc(2026, 10, 25, 0, 30),
                WINDOW,
                rules=rules(SUNDAY_0230_TO_0400, tz=PARIS),
            ),
            case(
                "paris fall: the second 02:30, CET, is still inside the window",
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 25, 1, 30),
                rules=rules(SUNDAY_0230_TO_0400, tz=PARIS),
            ),
            case(
                "paris fall: the instant of the change, the second 02:00, is inside an open window",
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 1, 0),
                rules=rules(SUNDAY_0100_TO_0500, tz=PARIS),
            ),
            case(
                "paris fall: a window closing at 04:00 CET waits for next sunday's 02:30",
                utc(2026, 10, 25, 3, 0),
                utc(2026, 11, 1, 1, 30),
                WINDOW,
                rules=rules(SUNDAY_0230_TO_0400, tz=PARIS),
            ),
            case(
                "paris fall: a full saturday moves to sunday's midnight, still CEST",
                utc(2026, 10, 24, 15, 0),
                utc(2026, 10, 24, 22, 0),
                CAP,
                rules=rules(cap=1, sender=PARIS),
                usage=used(date(2026, 10, 24)),
            ),
            case(
                "paris fall: a full sunday moves to monday's midnight, 25 hours later",
                utc(2026, 10, 24, 22, 0),
                utc(2026, 10, 25, 23, 0),
                CAP,
                rules=rules(cap=1, sender=PARIS),
                usage=used(date(2026, 10, 25)),
            ),
            case(
                "paris fall: a follow-up a day after saturday 10:00 CEST is due sunday 09:00 CET, inside the window",
                step_due(utc(2026, 10, 24, 8, 0), SimpleNamespace(delay_days=1, delay_hours=0)),
                utc(2026, 10, 25, 8, 0),
                rules=rules(window([7], "09:00", "09:30"), tz=PARIS),
            ),
            case(
                "new york spring: a window opening at 02:30 opens when the gap ends, 03:00 EDT",
                utc(2026, 3, 7, 12, 0),
                utc(2026, 3, 8, 7, 0),
                WINDOW,
                rules=rules(SUNDAY_0230_TO_0500, tz=NEW_YORK),
            ),
            case(
                "new york spring: 01:59 EST, just before the change, is inside an open window",
                utc(2026, 3, 8, 6, 59),
                utc(2026, 3, 8, 6, 59),
                rules=rules(SUNDAY_0100_TO_0500, tz=NEW_YORK),
            ),
            case(
                "new york spring: the instant of the change is inside an open window",
                utc(2026, 3, 8, 7, 0),
                utc(2026, 3, 8, 7, 0),
                rules=rules(SUNDAY_0100_TO_0500, tz=NEW_YORK),
            ),
            case(
                "new york spring: a window open across the change closes at 05:00 EDT",
                utc(2026, 3, 8, 9, 0),
                utc(2026, 3, 15, 5, 0),
                WINDOW,
                rules=rules(SUNDAY_0100_TO_0500, tz=NEW_YORK),
            ),
            case(
                "new york spring: a full saturday moves to sunday's midnight, still EST",
                utc(2026, 3, 7, 20, 0),
                utc(2026, 3, 8, 5, 0),
                CAP,
                rules=rules(cap=1, sender=NEW_YORK),
                usage=used(date(2026, 3, 7)),
            ),
            case(
                "new york spring: a full sunday moves to monday's midnight, 23 hours later",
                utc(2026, 3, 8, 5, 0),
                utc(2026, 3, 9, 4, 0),
                CAP,
                rules=rules(cap=1, sender=NEW_YORK),
                usage=used(date(2026, 3, 8)),
            ),
            case(
                "new york spring: a follow-up a day after saturday 09:00 EST is due at 10:00 EDT, as the window closes",
                step_due(utc(2026, 3, 7, 14, 0), SimpleNamespace(delay_days=1, delay_hours=0)),
                utc(2026, 3, 15, 13, 0),
                WINDOW,
                rules=rules(window([7], "09:00", "10:00"), tz=NEW_YORK),
            ),
            case(
                "new york fall: a window opening at 01:30 opens at the first 01:30, EDT",
                utc(2026, 10, 31, 12, 0),
                utc(2026, 11, 1, 5, 30),
                WINDOW,
                rules=rules(window([7], "01:30", "03:00"), tz=NEW_YORK),
            ),
            case(
                "new york fall: the second 01:30, EST, is still inside the window",
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 1, 6, 30),
                rules=rules(window([7], "01:30", "03:00"), tz=NEW_YORK),
            ),
            case(
                "new york fall: the instant of the change, the second 01:00, is inside an open window",
                utc(2026, 11, 1, 6, 0),
                utc(2026, 11, 1, 6, 0),
                rules=rules(window([7], "00:00", "02:30"), tz=NEW_YORK),
            ),
            case(
                "new york fall: a window open across the change closes at 02:30 EST",
                utc(2026, 11, 1, 7, 30),
                utc(2026, 11, 8, 5, 0),
                WINDOW,
                rules=rules(window([7], "00:00", "02:30"), tz=NEW_YORK),
            ),
            case(
                "new york fall: a full saturday moves to sunday's midnight, still EDT",
                utc(2026, 10, 31, 20, 0),
                utc(2026, 11, 1, 4, 0),
                CAP,
                rules=rules(cap=1, sender=NEW_YORK),
                usage=used(date(2026, 10, 31)),
            ),
            case(
                "new york fall: a full sunday moves to monday's midnight, 25 hours later",
                utc(2026, 11, 1, 4, 0),
                utc(2026, 11, 2, 5, 0),
                CAP,
                rules=rules(cap=1, sender=NEW_YORK),
                usage=used(date(2026, 11, 1)),
            ),
            case(
                "new york fall: a follow-up a day after saturday 09:00 EDT is due at 08:00 EST, before the window",
                step_due(utc(2026, 10, 31, 13, 0), SimpleNamespace(delay_days=1, delay_hours=0)),
                utc(2026, 11, 1, 14, 0),
                WINDOW,
                rules=rules(window([7], "09:00", "17:00"), tz=NEW_YORK),
            ),
        ],
    )
    def test_plan_follows_the_wall_clock_of_the_contact_and_the_sender(self, case):
        assert_planned(case)


class TestPlanWithWindowsAtMidnight:
    FRIDAY_EVENING = window([5], "18:00", "00:00")
    FRIDAY_NIGHT = window([5], "22:00", "06:00")

    @pytest.mark.parametrize(
        "case",
        [
            case(
                "a window ending at 00:00 is open at 23:59",
                utc(2026, 3, 6, 23, 59),
                utc(2026, 3, 6, 23, 59),
                rules=rules(FRIDAY_EVENING),
            ),
            case(
                "a window ending at 00:00 is closed at midnight, until next friday",
                utc(2026, 3, 7, 0, 0),
                utc(2026, 3, 13, 18, 0),
                WINDOW,
                rules=rules(FRIDAY_EVENING),
            ),
            case(
                "at midnight the next day's evening window is the next one",
                utc(2026, 3, 7, 0, 0),
                utc(2026, 3, 7, 18, 0),
                WINDOW,
                rules=rules(window([5, 6], "18:00", "00:00")),
            ),
            case(
                "paris: an evening window closes at midnight CET the night the clocks jump",
                utc(2026, 3, 28, 22, 59),
                utc(2026, 3, 28, 22, 59),
                rules=rules(window([6], "18:00", "00:00"), tz=PARIS),
            ),
            case(
                "paris: after midnight the next evening window opens at 18:00 CEST",
                utc(2026, 3, 28, 23, 0),
                utc(2026, 4, 4, 16, 0),
                WINDOW,
                rules=rules(window([6], "18:00", "00:00"), tz=PARIS),
            ),
            case(
                "paris: an evening window closes at midnight CEST the night the clocks fall back",
                utc(2026, 10, 24, 22, 0),
                utc(2026, 10, 31, 17, 0),
                WINDOW,
                rules=rules(window([6], "18:00", "00:00"), tz=PARIS),
            ),
            case(
                "saturday 03:00 belongs to friday's night window",
                utc(2026, 3, 7, 3, 0),
                utc(2026, 3, 7, 3, 0),
                rules=rules(FRIDAY_NIGHT),
            ),
            case(
                "saturday 03:00 is not in a saturday night window",
                utc(2026, 3, 7, 3, 0),
                utc(2026, 3, 7, 22, 0),
                WINDOW,
                rules=rules(window([6], "22:00", "06:00")),
            ),
            case(
                "friday's night window closes saturday 06:00",
                utc(2026, 3, 7, 6, 0),
                utc(2026, 3, 13, 22, 0),
                WINDOW,
                rules=rules(FRIDAY_NIGHT),
            ),
            case(
                "paris: a saturday night window closes at 06:00 CEST, after seven hours",
                utc(2026, 3, 29, 4, 0),
                utc(2026, 4, 4, 20, 0),
                WINDOW,
                rules=rules(window([6], "22:00", "06:00"), tz=PARIS),
            ),
            case(
                "a thursday night window runs into the observed independence day",
                utc(2026, 7, 3, 7, 0),
                utc(2026, 7, 3, 7, 0),
                rules=rules(window([4, 5], "22:00", "06:00"), holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "a night window opening on the observed independence day does not happen",
                utc(2026, 7, 3, 11, 0),
                utc(2026, 7, 10, 2, 0),
                WINDOW,
                HOLIDAY,
                rules=rules(window([4, 5], "22:00", "06:00"), holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "auckland: tuesday 05:00 NZDT belongs to monday's night window",
                utc(2026, 12, 14, 16, 0),
                utc(2026, 12, 14, 16, 0),
                rules=rules(window([1], "22:00", "06:00")),
                contact=AUCKLAND,
            ),
        ],
    )
    def test_plan_reads_a_window_by_the_local_date_it_opens_on(self, case):
        assert_planned(case)


class TestPlanInFarZones:
    @pytest.mark.parametrize(
        "case",
        [
            case(
                "auckland: monday 09:00 NZDT is sunday 20:00 UTC",
                utc(2026, 12, 13, 20, 0),
                utc(2026, 12, 13, 20, 0),
                rules=rules(WEEKDAYS_9_TO_5),
                contact=AUCKLAND,
            ),
            case(
                "auckland: a minute before monday's window waits for it",
                utc(2026, 12, 13, 19, 59),
                utc(2026, 12, 13, 20, 0),
                WINDOW,
                rules=rules(WEEKDAYS_9_TO_5),
                contact=AUCKLAND,
            ),
            case(
                "auckland: friday in utc is saturday in auckland, so monday 09:00 NZDT",
                utc(2026, 12, 11, 21, 0),
                utc(2026, 12, 13, 20, 0),
                WINDOW,
                rules=rules(WEEKDAYS_9_TO_5),
                contact=AUCKLAND,
            ),
            case(
                "auckland: the campaign zone stands in for an unknown contact zone",
                utc(2026, 12, 11, 21, 0),
                utc(2026, 12, 13, 20, 0),
                WINDOW,
                rules=rules(WEEKDAYS_9_TO_5, tz=AUCKLAND),
                contact="Not/AZone",
            ),
            case(
                "auckland: christmas and observed boxing day are skipped",
                utc(2026, 12, 24, 4, 0),
                utc(2026, 12, 28, 20, 0),
                WINDOW,
                HOLIDAY,
                rules=rules(WEEKDAYS_9_TO_5, holidays="NZ"),
                contact=AUCKLAND,
            ),
            case(
                "auckland: without a window christmas and boxing day are skipped on the local date",
                utc(2026, 12, 24, 12, 0),
                utc(2026, 12, 26, 11, 0),
                HOLIDAY,
                rules=rules(holidays="NZ"),
                contact=AUCKLAND,
            ),
            case(
                "kiritimati: saturday 02:00 LINT waits for monday 09:00 LINT, sunday 19:00 UTC",
                utc(2026, 12, 11, 12, 0),
                utc(2026, 12, 13, 19, 0),
                WINDOW,
                rules=rules(WEEKDAYS_9_TO_5),
                contact=KIRITIMATI,
            ),
            case(
                "kiritimati: thursday 20:00 UTC is friday 10:00 LINT, inside the window",
                utc(2026, 12, 10, 20, 0),
                utc(2026, 12, 10, 20, 0),
                rules=rules(WEEKDAYS_9_TO_5),
                contact=KIRITIMATI,
            ),
            case(
                "kiritimati: thursday in utc is friday in kiritimati, outside a monday-thursday window",
                utc(2026, 12, 10, 20, 0),
                utc(2026, 12, 13, 19, 0),
                WINDOW,
                rules=rules(window([1, 2, 3, 4], "09:00", "17:00")),
                contact=KIRITIMATI,
            ),
            case(
                "a kiritimati sender's full wednesday covers the new york contact's tuesday morning",
                utc(2026, 3, 3, 15, 0),
                utc(2026, 3, 4, 14, 0),
                CAP,
                WINDOW,
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=KIRITIMATI),
                contact=NEW_YORK,
                usage=used(date(2026, 3, 4)),
            ),
            case(
                "a kiritimati sender's cap does not count the new york contact's date",
                utc(2026, 3, 3, 15, 0),
                utc(2026, 3, 3, 15, 0),
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=KIRITIMATI),
                contact=NEW_YORK,
                usage=used(date(2026, 3, 3)),
            ),
            case(
                "an auckland sender's full tuesday ends at 11:00 UTC, inside the london window",
                utc(2026, 12, 14, 12, 0),
                utc(2026, 12, 15, 11, 0),
                CAP,
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=AUCKLAND),
                contact=LONDON,
                usage=used(date(2026, 12, 15)),
            ),
            case(
                "a utc sender's full sunday holds an auckland contact's monday morning until midnight utc",
                utc(2026, 12, 13, 20, 0),
                utc(2026, 12, 14, 0, 0),
                CAP,
                rules=rules(WEEKDAYS_9_TO_5, cap=1),
                contact=AUCKLAND,
                usage=used(date(2026, 12, 13)),
            ),
            case(
                "a utc sender's cap does not count the auckland contact's date",
                utc(2026, 12, 13, 20, 0),
                utc(2026, 12, 13, 20, 0),
                rules=rules(WEEKDAYS_9_TO_5, cap=1),
                contact=AUCKLAND,
                usage=used(date(2026, 12, 14)),
            ),
        ],
    )
    def test_plan_reads_windows_in_the_contact_zone_and_caps_in_the_sender_zone(self, case):
        assert_planned(case)


class TestPlanOnHolidays:
    FRIDAY_TO_SUNDAY = window([5, 6, 7], "09:00", "17:00")

    @pytest.mark.parametrize(
        "case",
        [
            case(
                "thursday evening: friday (observed) and saturday (independence day) are skipped",
                utc(2026, 7, 2, 22, 0),
                utc(2026, 7, 5, 13, 0),
                WINDOW,
                HOLIDAY,
                rules=rules(FRIDAY_TO_SUNDAY, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "inside friday's window the observed holiday alone moves it to sunday",
                utc(2026, 7, 3, 14, 0),
                utc(2026, 7, 5, 13, 0),
                HOLIDAY,
                rules=rules(FRIDAY_TO_SUNDAY, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "inside saturday's window independence day alone moves it to sunday",
                utc(2026, 7, 4, 14, 0),
                utc(2026, 7, 5, 13, 0),
                HOLIDAY,
                rules=rules(FRIDAY_TO_SUNDAY, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "after saturday's window only the window moves it to sunday",
                utc(2026, 7, 4, 22, 0),
                utc(2026, 7, 5, 13, 0),
                WINDOW,
                rules=rules(FRIDAY_TO_SUNDAY, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "without skip_holidays friday's window is open",
                utc(2026, 7, 3, 14, 0),
                utc(2026, 7, 3, 14, 0),
                rules=rules(FRIDAY_TO_SUNDAY),
                contact=NEW_YORK,
            ),
            case(
                "weekdays: the observed friday alone moves it to monday",
                utc(2026, 7, 3, 14, 0),
                utc(2026, 7, 6, 13, 0),
                HOLIDAY,
                rules=rules(WEEKDAYS_9_TO_5, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "weekdays: thursday evening waits for the window and skips the holiday",
                utc(2026, 7, 2, 22, 0),
                utc(2026, 7, 6, 13, 0),
                WINDOW,
                HOLIDAY,
                rules=rules(WEEKDAYS_9_TO_5, holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "no window: friday and saturday are skipped until sunday's midnight",
                utc(2026, 7, 3, 16, 0),
                utc(2026, 7, 5, 4, 0),
                HOLIDAY,
                rules=rules(holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "no window: sunday 03:00 UTC is still independence day in new york",
                utc(2026, 7, 5, 3, 0),
                utc(2026, 7, 5, 4, 0),
                HOLIDAY,
                rules=rules(holidays="US"),
                contact=NEW_YORK,
            ),
            case(
                "no window: sunday 03:00 UTC is sunday noon in tokyo, no holiday",
                utc(2026, 7, 5, 3, 0),
                utc(2026, 7, 5, 3, 0),
                rules=rules(holidays="US"),
                contact=TOKYO,
            ),
        ],
    )
    def test_plan_names_the_holiday_and_the_window_apart(self, case):
        assert_planned(case)


class TestPlanWithADailyCap:
    @pytest.mark.parametrize(
        "case",
        [
            case(
                "full at 23:59 in paris: the next paris day starts a minute later, inside the LA window",
                utc(2026, 3, 4, 22, 59),
                utc(2026, 3, 4, 23, 0),
                CAP,
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=PARIS),
                contact=LOS_ANGELES,
                usage=used(date(2026, 3, 4)),
            ),
            case(
                "full at 23:59 in paris: the next paris day starts as the LA window closes",
                utc(2026, 3, 4, 22, 59),
                utc(2026, 3, 5, 17, 0),
                CAP,
                WINDOW,
                rules=rules(window([1, 2, 3, 4, 5], "09:00", "15:00"), cap=1, sender=PARIS),
                contact=LOS_ANGELES,
                usage=used(date(2026, 3, 4)),
            ),
            case(
                "the contact's full wednesday is the paris sender's open thursday",
                utc(2026, 3, 4, 23, 30),
                utc(2026, 3, 4, 23, 30),
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=PARIS),
                contact=LOS_ANGELES,
                usage=used(date(2026, 3, 4)),
            ),
            case(
                "the paris sender's full thursday holds the contact's wednesday afternoon",
                utc(2026, 3, 4, 23, 30),
                utc(2026, 3, 5, 23, 0),
                CAP,
                rules=rules(WEEKDAYS_9_TO_5, cap=1, sender=PARIS),
                contact=LOS_ANGELES,
                usage=used(date(2026, 3, 5)),
            ),
            case(
                "below the cap it goes now",
                utc(2026, 3, 4, 22, 59),
                utc(2026, 3, 4, 22, 59),
                rules=rules(cap=2, sender=PARIS),
                usage=used(date(2026, 3, 4)),
            ),
            case(
                "without a sender zone the day is the utc day",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 5, 0, 0),
                CAP,
                rules=rules(cap=5),
                usage=used(date(2026, 3, 4), count=5),
            ),
            case(
                "an unknown sender zone counts utc days",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 5, 0, 0),
                CAP,
                rules=rules(cap=5, sender="Not/AZone"),
                usage=used(date(2026, 3, 4), count=5),
            ),
            case(
                "the next paris day is a holiday in new york: cap, window, then holiday",
                utc(2026, 7, 2, 20, 59),
                utc(2026, 7, 6, 13, 0),
                CAP,
                WINDOW,
                HOLIDAY,
                rules=rules(WEEKDAYS_9_TO_5, holidays="US", cap=1, sender=PARIS),
                contact=NEW_YORK,
                usage=used(date(2026, 7, 2)),
            ),
            case(
                "without usage the cap is not checked",
                utc(2026, 3, 4, 12, 0),
                utc(2026, 3, 4, 12, 0),
                rules=rules(cap=1, gap=3600),
            ),
        ],
    )
    def test_plan_counts_the_cap_per_sender_day(self, case):
        assert_planned(case)


class TestPlanWithAMinimumGap:
    LAST_AT_2358 = utc(2026, 3, 4, 23, 58)

    @pytest.mark.parametrize(
        "case",
        [
            case(
                "a send at 23:58 with a 5 minute gap waits until 00:03 the next day",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 5, 0, 3),
                GAP,
                rules=rules(gap=300),
                usage=used(last=LAST_AT_2358),
            ),
            case(
                "paris: a send at 23:58 CET waits until 00:03 CET",
                utc(2026, 3, 4, 22, 59),
                utc(2026, 3, 4, 23, 3),
                GAP,
                rules=rules(gap=300, cap=1, sender=PARIS),
                usage=used(last=utc(2026, 3, 4, 22, 58)),
            ),
            case(
                "the gap ends past an evening window ending at midnight",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 11, 20, 0),
                GAP,
                WINDOW,
                rules=rules(window([3], "20:00", "00:00"), gap=300),
                usage=used(last=LAST_AT_2358),
            ),
            case(
                "the gap ends on a full day",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 6, 0, 0),
                GAP,
                CAP,
                rules=rules(gap=300, cap=1),
                usage=used(date(2026, 3, 5), last=LAST_AT_2358),
            ),
            case(
                "the gap ends after the window, whose next day is full",
                utc(2026, 3, 4, 16, 59),
                utc(2026, 3, 6, 9, 0),
                GAP,
                WINDOW,
                CAP,
                rules=rules(WEEKDAYS_9_TO_5, gap=300, cap=1),
                usage=used(date(2026, 3, 5), last=utc(2026, 3, 4, 16, 58)),
            ),
            case(
                "a gap that has passed does not delay",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 4, 23, 59),
                rules=rules(gap=300),
                usage=used(last=utc(2026, 3, 4, 23, 50)),
            ),
            case(
                "a gap ending exactly at the due time does not delay",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 4, 23, 59),
                rules=rules(gap=300),
                usage=used(last=utc(2026, 3, 4, 23, 54)),
            ),
            case(
                "a send already on its way later counts too",
                utc(2026, 3, 4, 23, 59),
                utc(2026, 3, 5, 0, 15),
                GAP,
                rules=rules(gap=300),
                usage=used(last=utc(2026, 3, 5, 0, 10)),
            ),
        ],
    )
    def test_plan_keeps_the_gap_then_reapplies_window_and_cap(self, case):
        assert_planned(case)


class TestPlanRetries:
    PARIS_WEEKDAYS = rules(WEEKDAYS_9_TO_5, tz=PARIS)
    WEDNESDAY_1658_CET = utc(2026, 3, 4, 15, 58)
    WEDNESDAY_NOON_CET = utc(2026, 3, 4, 11, 0)

    @pytest.mark.parametrize(
        "case",
        [
            case(
                "attempt 1 does not wait",
                WEDNESDAY_1658_CET,
                WEDNESDAY_1658_CET,
                rules=PARIS_WEEKDAYS,
            ),
            case(
                "attempt 1 ignores jitter",
                WEDNESDAY_1658_CET,
                WEDNESDAY_1658_CET,
                rules=PARIS_WEEKDAYS,
                jitter=1.0,
            ),
            case(
                "attempt 2 waits a minute, still inside the window",
                WEDNESDAY_1658_CET,
                utc(2026, 3, 4, 15, 59),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=2,
            ),
            case(
                "attempt 2 with full jitter waits 75 seconds",
                WEDNESDAY_1658_CET,
                utc(2026, 3, 4, 15, 59, 15),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=2,
                jitter=1.0,
            ),
            case(
                "attempt 3 waits 5 minutes, past the window's end, until thursday 09:00",
                WEDNESDAY_1658_CET,
                utc(2026, 3, 5, 8, 0),
                RETRY,
                WINDOW,
                rules=PARIS_WEEKDAYS,
                attempt=3,
            ),
            case(
                "attempt 6 waits 4 hours",
                WEDNESDAY_NOON_CET,
                utc(2026, 3, 4, 15, 0),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=6,
            ),
            case(
                "attempt 6 with full jitter waits 5 hours, to the window's end, so thursday",
                WEDNESDAY_NOON_CET,
                utc(2026, 3, 5, 8, 0),
                RETRY,
                WINDOW,
                rules=PARIS_WEEKDAYS,
                attempt=6,
                jitter=1.0,
            ),
            case(
                "attempt 7 reuses the last backoff",
                WEDNESDAY_NOON_CET,
                utc(2026, 3, 4, 15, 0),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=7,
            ),
            case(
                "attempt 7 with full jitter waits 5 hours, just inside the window",
                utc(2026, 3, 4, 10, 59),
                utc(2026, 3, 4, 15, 59),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=7,
                jitter=1.0,
            ),
            case(
                "attempt 12 reuses the last backoff too",
                WEDNESDAY_NOON_CET,
                utc(2026, 3, 4, 15, 0),
                RETRY,
                rules=PARIS_WEEKDAYS,
                attempt=12,
            ),
            case(
                "a friday afternoon retry waits for monday 09:00 CEST, after the change",
                utc(2026, 3, 27, 14, 0),
                utc(2026, 3, 30, 7, 0),
                RETRY,
                WINDOW,
                rules=PARIS_WEEKDAYS,
                attempt=6,
            ),
            case(
                "a retry planned after its backoff has passed goes now",
                utc(2026, 3, 4, 9, 0),
                utc(2026, 3, 4, 10, 0),
                RETRY,
                rules=PARIS_WEEKDAYS,
                now=utc(2026, 3, 4, 10, 0),
                attempt=2,
            ),
            case(
                "a retry also keeps the gap after the failed send",
                WEDNESDAY_NOON_CET,
                utc(2026, 3, 4, 11, 10),
                RETRY,
                GAP,
                rules=rules(WEEKDAYS_9_TO_5, tz=PARIS, gap=600),
                usage=used(last=WEDNESDAY_NOON_CET),
                attempt=2,
            ),
        ],
    )
    def test_plan_waits_the_backoff_then_moves_into_the_window(self, case):
        assert_planned(case)


class TestRetryDelay:
    @pytest.mark.parametrize(
        ("attempt", "jitter", "seconds"),
        [
            (0, 0.0, 0),
            (1, 0.0, 0),
            (1, 1.0, 0),
            (2, 0.0, 60),
            (2, 1.0, 75),
            (3, 0.0, 300),
            (3, 1.0, 375),
            (4, 0.0, 900),
            (5, 0.0, 3600),
            (5, 0.5, 4050),
            (6, 0.0, 4 * 3600),
            (6, 1.0, 5 * 3600),
            (7, 0.0, 4 * 3600),
            (7, 1.0, 5 * 3600),
            (100, 1.0, 5 * 3600),
        ],
    )
    def test_the_backoff_grows_then_stays_at_its_last_value(self, attempt, jitter, seconds):
        assert retry_delay(attempt, jitter) == timedelta(seconds=seconds)

    def test_the_table_is_the_documented_one(self):
        assert RETRY_BACKOFF == (60, 300, 900, 3600, 4 * 3600)

    @pytest.mark.parametrize("jitter", [-0.01, 1.01, float("nan")])
    def test_jitter_outside_zero_to_one_is_refused(self, jitter):
        with pytest.raises(ValueError, match="jitter"):
            retry_delay(2, jitter)
        with pytest.raises(ValueError, match="jitter"):
            plan(utc(2026, 3, 4), now=utc(2026, 3, 4), rules=Rules(), attempt=2, jitter=jitter)


class TestStepDue:
    @pytest.mark.parametrize(
        ("previous", "days", "hours", "expected"),
        [
            pytest.param(utc(2026, 3, 28, 9, 0), 1, 0, utc(2026, 3, 29, 9, 0), id="paris spring: 10:00 CET + 1 day"),
            pytest.param(utc(2026, 10, 24, 8, 0), 1, 0, utc(2026, 10, 25, 8, 0), id="paris fall: 10:00 CEST + 1 day"),
            pytest.param(utc(2026, 3, 7, 14, 0), 1, 0, utc(2026, 3, 8, 14, 0), id="new york spring: 09:00 EST + 1 day"),
            pytest.param(
                utc(2026, 10, 31, 13, 0), 1, 0, utc(2026, 11, 1, 13, 0), id="new york fall: 09:00 EDT + 1 day"
            ),
            pytest.param(
                local(PARIS, 2026, 3, 28, 10, 0), 1, 0, utc(2026, 3, 29, 9, 0), id="a local previous time, same instant"
            ),
            pytest.param(utc(2026, 3, 28, 9, 0), 0, 36, utc(2026, 3, 29, 21, 0), id="hours only"),
            pytest.param(utc(2026, 3, 28, 9, 0), 2, 5, utc(2026, 3, 30, 14, 0), id="days and hours"),
            pytest.param(utc(2026, 3, 28, 9, 0), 0, 0, utc(2026, 3, 28, 9, 0), id="no delay"),
        ],
    )
    def test_a_step_delay_is_an_exact_duration(self, previous, days, hours, expected):
        result = step_due(previous, SimpleNamespace(delay_days=days, delay_hours=hours))
        assert result == expected
        assert result.tzinfo is UTC

    def test_the_wall_clock_moves_across_a_change(self):
        due = step_due(local(PARIS, 2026, 3, 28, 10, 0), SimpleNamespace(delay_days=1, delay_hours=0))
        assert due.astimezone(ZoneInfo(PARIS)).time() == time(11, 0)

    def test_a_naive_previous_time_is_refused(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            step_due(datetime(2026, 3, 28, 9, 0), SimpleNamespace(delay_days=1, delay_hours=0))


class TestRulesFromSettings:
    def test_it_reads_every_timing_setting(self):
        campaign = {
            "send_window": {"days": [1, 2], "start": "08:00", "end": "18:00", "timezone": TOKYO},
            "timezone": PARIS,
            "skip_holidays": "de-by",
            "daily_cap": 50,
            "min_gap_seconds": 120,
            "track_opens": True,
        }
        assert Rules.from_settings(campaign, sender_timezone=AUCKLAND) == Rules(
            window=Window(frozenset({1, 2}), time(8), time(18), TOKYO),
            timezone=PARIS,
            holidays="DE-BY",
            daily_cap=50,
            min_gap_seconds=120,
            sender_timezone=AUCKLAND,
        )

    def test_empty_settings_mean_no_rules(self):
        assert Rules.from_settings({}) == Rules()

    def test_a_zero_cap_or_gap_means_none(self):
        assert Rules.from_settings({"daily_cap": 0, "min_gap_seconds": 0}) == Rules()

    @pytest.mark.parametrize(
        "malformed",
        [
            pytest.param({"skip_holidays": "XX"}, id="unknown country"),
            pytest.param({"skip_holidays": "Germany"}, id="not a country code"),
            pytest.param({"skip_holidays": "DE-ZZ"}, id="unknown subdivision"),
            pytest.param({"send_window": {"start": "25:00"}}, id="malformed window"),
            pytest.param({"send_window": {"days": []}}, id="a window without days"),
        ],
    )
    def test_it_refuses_malformed_settings(self, malformed):
        with pytest.raises(ValueError):
            Rules.from_settings(malformed)

    @pytest.mark.parametrize(
        ("sender", "moment", "day", "begins", "ends"),
        [
            pytest.param(None, utc(2026, 3, 4, 23, 59), date(2026, 3, 4), utc(2026, 3, 4), utc(2026, 3, 5), id="utc"),
            pytest.param(
                PARIS, utc(2026, 3, 4, 23, 0), date(2026, 3, 5), utc(2026, 3, 4, 23), utc(2026, 3, 5, 23), id="paris"
            ),
            pytest.param(
                KIRITIMATI,
                utc(2026, 3, 3, 15, 0),
                date(2026, 3, 4),
                utc(2026, 3, 3, 10),
                utc(2026, 3, 4, 10),
                id="kiritimati, a day ahead",
            ),
            pytest.param(
                PARIS,
                utc(2026, 3, 29, 12, 0),
                date(2026, 3, 29),
                utc(2026, 3, 28, 23),
                utc(2026, 3, 29, 22),
                id="paris spring, 23 hours",
            ),
            pytest.param(
                PARIS,
                utc(2026, 10, 25, 12, 0),
                date(2026, 10, 25),
                utc(2026, 10, 24, 22),
                utc(2026, 10, 25, 23),
                id="paris fall, 25 hours",
            ),
            pytest.param(
                NEW_YORK,
                utc(2026, 11, 1, 12, 0),
                date(2026, 11, 1),
                utc(2026, 11, 1, 4),
                utc(2026, 11, 2, 5),
                id="new york fall, 25 hours",
            ),
            pytest.param(
                "America/Havana",
                utc(2026, 3, 8, 17, 0),
                date(2026, 3, 8),
                utc(2026, 3, 8, 5),
                utc(2026, 3, 9, 4),
                id="havana, whose midnight falls in the gap",
            ),
        ],
    )
    def test_the_sender_day_is_the_date_in_the_sender_zone(self, sender, moment, day, begins, ends):
        sender_rules = Rules(sender_timezone=sender)
        assert sender_rules.sender_day(moment) == day
        assert sender_rules.sender_day_bounds(day) == (begins, ends)

    def test_the_contact_zone_falls_back_to_the_window_then_the_campaign(self):
        with_window_zone = rules({**WEEKDAYS_9_TO_5, "timezone": TOKYO}, tz=PARIS)
        assert with_window_zone.contact_zone(AUCKLAND) == ZoneInfo(AUCKLAND)
        assert with_window_zone.contact_zone(None) == ZoneInfo(TOKYO)
        assert with_window_zone.contact_zone("Not/AZone") == ZoneInfo(TOKYO)
        assert rules(WEEKDAYS_9_TO_5, tz=PARIS).contact_zone(None) == ZoneInfo(PARIS)
        assert rules(WEEKDAYS_9_TO_5).contact_zone(None) == ZoneInfo("UTC")


class TestSenderUsage:
    def test_it_counts_sends_on_the_sender_day(self):
        usage = SenderUsage()
        kiritimati = Rules(sender_timezone=KIRITIMATI)
        usage.record(utc(2026, 3, 3, 15, 0), kiritimati)
        usage.record(utc(2026, 3, 3, 9, 59), kiritimati)
        assert usage.per_day == {date(2026, 3, 4): 1, date(2026, 3, 3): 1}
        assert usage.sent_on(date(2026, 3, 4)) == 1
        assert usage.sent_on(date(2026, 3, 5)) == 0

    def test_the_last_send_only_moves_forward(self):
        usage = SenderUsage()
        usage.record(utc(2026, 3, 4, 12, 0), Rules())
        usage.record(utc(2026, 3, 4, 11, 0), Rules())
        assert usage.last_sent_at == utc(2026, 3, 4, 12, 0)
        assert usage.per_day == {date(2026, 3, 4): 2}

    def test_recorded_sends_fill_the_cap_and_the_gap(self):
        capped = rules(cap=2, gap=600, sender=PARIS)
        usage = SenderUsage()
        first = plan(utc(2026, 3, 4, 22, 0), now=utc(2026, 3, 4, 22, 0), rules=capped, usage=usage)
        assert first == Plan(utc(2026, 3, 4, 22, 0))
        usage.record(first.at, capped)
        second = plan(first.at, now=first.at, rules=capped, usage=usage)
        assert second == Plan(utc(2026, 3, 4, 22, 10), (GAP,))
        usage.record(second.at, capped)
        assert plan(second.at, now=second.at, rules=capped, usage=usage) == Plan(utc(2026, 3, 4, 23, 0), (GAP, CAP))

    def test_a_day_missing_from_per_day_is_asked_of_the_ledger_once(self):
        asked = []

        def ledger(day: date) -> int:
            asked.append(day)
            return 3

        usage = SenderUsage(count=ledger)
        assert usage.sent_on(date(2026, 3, 4)) == 3
        assert usage.sent_on(date(2026, 3, 4)) == 3
        usage.record(utc(2026, 3, 4, 12, 0), Rules())
        assert usage.sent_on(date(2026, 3, 4)) == 4
        assert asked == [date(2026, 3, 4)]

    def test_a_ledger_count_fills_the_cap(self):
        usage = SenderUsage(count=lambda day: 2 if day == date(2026, 3, 4) else 0)
        result = plan(utc(2026, 3, 4, 12, 0), now=utc(2026, 3, 4, 12, 0), rules=rules(cap=2), usage=usage)
        assert result == Plan(utc(2026, 3, 5), (CAP,))

    def test_a_naive_time_is_refused(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            SenderUsage().record(datetime(2026, 3, 4, 12, 0), Rules())


class EveryDayFull(dict):
    def __contains__(self, day) -> bool:
        return True

    def __getitem__(self, day) -> int:
        return 1

    def get(self, day, default=None) -> int:
        return 1


class TestPlanRefuses:
    @pytest.mark.parametrize(
        "send_window", [pytest.param(None, id="no window"), pytest.param(WEEKDAYS_9_TO_5, id="weekdays")]
    )
    def test_no_send_time_when_every_day_is_full(self, send_window):
        with pytest.raises(NoSendTime):
            plan(
                utc(2026, 3, 4),
                now=utc(2026, 3, 4),
                rules=rules(send_window, cap=1, sender=PARIS),
                usage=SenderUsage(EveryDayFull()),
            )

    @pytest.mark.parametrize(
        ("due", "now"),
        [
            pytest.param(datetime(2026, 3, 4, 12, 0), utc(2026, 3, 4, 12, 0), id="naive due"),
            pytest.param(utc(2026, 3, 4, 12, 0), datetime(2026, 3, 4, 12, 0), id="naive now"),
        ],
    )
    def test_naive_times_are_refused(self, due, now):
        with pytest.raises(ValueError, match="timezone-aware"):
            plan(due, now=now, rules=Rules())

    def test_no_send_time_when_every_day_within_the_horizon_is_full(self):
        usage = SenderUsage({date(2026, 3, 4) + timedelta(days=offset): 1 for offset in range(HORIZON_DAYS + 50)})
        with pytest.raises(NoSendTime):
            plan(utc(2026, 3, 4, 12, 0), now=utc(2026, 3, 4, 12, 0), rules=rules(cap=1), usage=usage)

    def test_a_naive_last_send_is_refused(self):
        with pytest.raises(ValueError, match="timezone-aware"):
            plan(
                utc(2026, 3, 4, 12, 0),
                now=utc(2026, 3, 4, 12, 0),
                rules=rules(gap=60),
                usage=SenderUsage(last_sent_at=datetime(2026, 3, 4, 12, 0)),
            )


FAR_AND_ODD_ZONES = [
    None,
    "UTC",
    PARIS,
    NEW_YORK,
    AUCKLAND,
    KIRITIMATI,
    "Pacific/Chatham",
    "Pacific/Pago_Pago",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "Asia/Kolkata",
]
clock_times = st.integers(0, 24 * 60 - 1).map(lambda minutes: f"{minutes // 60:02d}:{minutes % 60:02d}")


@st.composite
def send_windows(draw) -> dict:
    start = draw(clock_times)
    end = draw(clock_times.filter(lambda end: end != start))
    return window(sorted(draw(st.sets(st.integers(1, 7), min_size=1))), start, end)


@dataclass
class Scenario:
    due: datetime
    now: datetime
    rules: Rules
    contact: str | None
    usage: SenderUsage | None
    attempt: int
    jitter: float

    @property
    def start(self) -> datetime:
        return max(self.due, self.now, self.due + retry_delay(self.attempt, self.jitter))

    @property
    def zone(self) -> ZoneInfo:
        return self.rules.contact_zone(self.contact)

    def plan(self) -> Plan:
        return plan(
            self.due,
            now=self.now,
            rules=self.rules,
            contact_timezone=self.contact,
            usage=self.usage,
            attempt=self.attempt,
            jitter=self.jitter,
        )

    def in_window(self, moment: datetime) -> bool:
        window, zone, country = self.rules.window, self.zone, self.rules.holidays
        day = moment.astimezone(zone).date()
        if window is None:
            return not is_holiday(day, country)
        for opening in (day + timedelta(days=offset) for offset in (-2, -1, 0, 1)):
            if opening.isoweekday() not in window.days or is_holiday(opening, country):
                continue
            closing = opening + timedelta(days=1) if window.crosses_midnight else opening
            if local_to_utc(opening, window.start, zone) <= moment < local_to_utc(closing, window.end, zone):
                return True
        return False

    def gap_kept(self, moment: datetime) -> bool:
        usage, gap = self.usage, self.rules.min_gap_seconds
        return (
            usage is None
            or not gap
            or usage.last_sent_at is None
            or moment >= usage.last_sent_at + timedelta(seconds=gap)
        )

    def under_cap(self, moment: datetime) -> bool:
        usage, cap = self.usage, self.rules.daily_cap
        return usage is None or not cap or usage.sent_on(self.rules.sender_day(moment)) < cap

    def allowed(self, moment: datetime) -> bool:
        return self.in_window(moment) and self.gap_kept(moment) and self.under_cap(moment)

    def openings(self, until: datetime):
        """Every instant in [start, until) at which the allowed time can begin: the rules' interval starts."""
        window, zone, sender_zone = self.rules.window, self.zone, self.rules.sender_zone
        yield self.start
        if self.usage is not None and self.usage.last_sent_at is not None and self.rules.min_gap_seconds:
            yield self.usage.last_sent_at + timedelta(seconds=self.rules.min_gap_seconds)
        for tz in (zone, sender_zone):
            first, last = self.start.astimezone(tz).date(), until.astimezone(tz).date()
            for offset in range(-2, (last - first).days + 2):
                day = first + timedelta(days=offset)
                yield local_to_utc(day, time(0), tz)
                if window is not None and tz is zone:
                    yield local_to_utc(day, window.start, zone)


@st.composite
def scenarios(draw) -> Scenario:
    due = draw(st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31, 23, 59), timezones=st.just(UTC)))
    now = due + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))
    policy_rules = rules(
        draw(st.none() | send_windows()),
        tz=draw(st.sampled_from(FAR_AND_ODD_ZONES)),
        holidays=draw(st.sampled_from([None, "US", "NZ", "FR", "DE-BY"])),
        cap=draw(st.none() | st.integers(1, 3)),
        gap=draw(st.none() | st.integers(0, 2 * 3600) | st.just(86_400)),
        sender=draw(st.sampled_from(FAR_AND_ODD_ZONES)),
    )
    usage = None
    if draw(st.booleans()):
        today = policy_rules.sender_day(max(due, now))
        per_day = draw(
            st.dictionaries(st.integers(-2, 6).map(lambda offset: today + timedelta(days=offset)), st.integers(0, 3))
        )
        last = draw(st.none() | st.integers(-2 * 1440, 1440).map(lambda minutes: due + timedelta(minutes=minutes)))
        usage = SenderUsage(per_day, last)
    return Scenario(
        due,
        now,
        policy_rules,
        draw(st.sampled_from([*FAR_AND_ODD_ZONES, "Not/AZone"])),
        usage,
        draw(st.integers(1, 8)),
        draw(st.floats(0, 1)),
    )


class TestPlanInvariants:
    @settings(max_examples=200, deadline=None)
    @given(scenarios())
    def test_the_plan_satisfies_every_rule_at_once(self, scenario):
        result = scenario.plan()
        assert result.at >= scenario.start >= max(scenario.due, scenario.now)
        assert result.at.tzinfo is UTC
        policy_rules = scenario.rules
        opened = next_send_time(
            result.at, window=policy_rules.window, tz=scenario.zone, holidays_country=policy_rules.holidays
        )
        assert opened == result.at
        assert scenario.in_window(result.at)
        assert scenario.gap_kept(result.at)
        assert scenario.under_cap(result.at)

    @settings(max_examples=200, deadline=None)
    @given(scenarios())
    def test_the_plan_is_the_earliest_allowed_instant(self, scenario):
        result = scenario.plan()
        earlier = sorted({moment for moment in scenario.openings(result.at) if scenario.start <= moment < result.at})
        assert [moment for moment in earlier if scenario.allowed(moment)] == []

    @settings(max_examples=200, deadline=None)
    @given(scenarios())
    def test_the_plan_names_a_reason_exactly_when_it_waits(self, scenario):
        result = scenario.plan()
        assert (result.delays[:1] == (RETRY,)) == (scenario.attempt > 1)
        assert RETRY not in result.delays[1:]
        assert len(set(result.delays)) == len(result.delays)
        assert bool(set(result.delays) - {RETRY}) == (result.at > scenario.start)

    @settings(max_examples=200, deadline=None)
    @given(scenarios())
    def test_planning_again_from_the_plan_changes_nothing(self, scenario):
        first = scenario.plan()
        again = plan(
            first.at, now=first.at, rules=scenario.rules, contact_timezone=scenario.contact, usage=scenario.usage
        )
        assert again == Plan(first.at)
