import random
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from webapp.engine.holidays import check_country, holiday_dates, is_holiday, parse_country
from webapp.engine.scheduler import (
    NoSendTime,
    Window,
    add_jitter,
    apply_daily_cap,
    apply_min_gap,
    local_day_start,
    local_to_utc,
    next_due,
    next_send_time,
    parse_window,
    plan_send,
    resolve_timezone,
    retry_backoff,
    step_delay,
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


class TestDailyCap:
    def test_a_day_with_room_keeps_the_candidate(self):
        candidate = utc(2026, 3, 2, 10, 0)
        assert apply_daily_cap(candidate, cap=3, sent_on_day={date(2026, 3, 2): 2}) == candidate

    def test_no_cap_keeps_the_candidate(self):
        assert apply_daily_cap(utc(2026, 3, 2, 10), cap=None, sent_on_day={}) == utc(2026, 3, 2, 10)

    def test_a_full_day_moves_to_the_next_window_day(self):
        sent = {date(2026, 3, 2): 50, date(2026, 3, 3): 50}
        result = apply_daily_cap(utc(2026, 3, 2, 10, 0), cap=50, sent_on_day=sent, window=WEEKDAYS_9_TO_5)
        assert result == utc(2026, 3, 4, 9, 0)

    def test_a_full_friday_moves_past_the_weekend_and_a_holiday(self):
        # Friday 2026-01-16 is full; Monday 2026-01-19 is Martin Luther King Jr. Day.
        sent = {"2026-01-16": 10}
        candidate = local(NEW_YORK, 2026, 1, 16, 11, 0).astimezone(UTC)
        result = apply_daily_cap(
            candidate, cap=10, sent_on_day=sent, tz=NEW_YORK, window=WEEKDAYS_9_TO_5, holidays_country="US"
        )
        assert result == local(NEW_YORK, 2026, 1, 20, 9, 0)

    def test_days_are_counted_in_the_senders_zone(self):
        # 2026-03-03 02:00Z is still March 2nd in New York, whose day is full.
        sent = {date(2026, 3, 2): 5}
        result = apply_daily_cap(utc(2026, 3, 3, 2, 0), cap=5, sent_on_day=sent, tz=NEW_YORK)
        assert result == local(NEW_YORK, 2026, 3, 3, 0, 0)
        assert apply_daily_cap(utc(2026, 3, 3, 2, 0), cap=5, sent_on_day=sent, tz="UTC") == utc(2026, 3, 3, 2, 0)

    def test_the_window_can_be_in_the_contacts_zone(self):
        # Sender in Berlin is full on Monday; the contact's window is 9-17 New York time.
        sent = {date(2026, 3, 2): 1}
        result = apply_daily_cap(
            utc(2026, 3, 2, 15, 0), cap=1, sent_on_day=sent, tz=BERLIN, window=WEEKDAYS_9_TO_5, window_tz=NEW_YORK
        )
        assert result == local(NEW_YORK, 2026, 3, 3, 9, 0)

    def test_a_callable_can_supply_the_counts(self):
        asked = []

        def sent_on(day):
            asked.append(day)
            return 100 if day.day < 5 else 0

        assert apply_daily_cap(utc(2026, 3, 3, 10), cap=100, sent_on_day=sent_on) == utc(2026, 3, 5, 0, 0)
        assert asked == [date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5)]

    def test_every_day_full_is_no_send_time(self):
        with pytest.raises(NoSendTime):
            apply_daily_cap(utc(2026, 3, 3), cap=1, sent_on_day=lambda day: 1)

    def test_a_cap_below_one_is_an_error(self):
        with pytest.raises(ValueError):
            apply_daily_cap(utc(2026, 3, 3), cap=0, sent_on_day={})


class TestGapsJitterBackoff:
    def test_min_gap_pushes_after_the_previous_send(self):
        last = utc(2026, 3, 2, 10, 0)
        assert apply_min_gap(utc(2026, 3, 2, 10, 1), last_sent_at=last, min_gap_seconds=300) == utc(2026, 3, 2, 10, 5)
        assert apply_min_gap(utc(2026, 3, 2, 11, 0), last_sent_at=last, min_gap_seconds=300) == utc(2026, 3, 2, 11, 0)
        assert apply_min_gap(utc(2026, 3, 2, 10, 1), last_sent_at=None, min_gap_seconds=300) == utc(2026, 3, 2, 10, 1)

    def test_min_gap_jitter_comes_from_the_injected_random(self):
        last = utc(2026, 3, 2, 10, 0)
        results = {
            apply_min_gap(last, last_sent_at=last, min_gap_seconds=60, jitter_seconds=30, rng=random.Random(seed))
            for seed in range(50)
        }
        assert all(utc(2026, 3, 2, 10, 1) <= result <= utc(2026, 3, 2, 10, 1, 30) for result in results)
        assert len(results) > 10
        first = apply_min_gap(last, last_sent_at=last, min_gap_seconds=60, jitter_seconds=30, rng=random.Random(7))
        again = apply_min_gap(last, last_sent_at=last, min_gap_seconds=60, jitter_seconds=30, rng=random.Random(7))
        assert first == again

    def test_add_jitter_is_whole_seconds_within_bounds(self):
        start = utc(2026, 3, 2, 10, 0)
        rng = random.Random(1)
        values = [add_jitter(start, max_seconds=120, rng=rng) - start for _ in range(200)]
        assert min(values) >= timedelta(0)
        assert max(values) <= timedelta(seconds=120)
        assert all(value.microseconds == 0 for value in values)
        assert add_jitter(start, max_seconds=0) == start
        with pytest.raises(ValueError):
            add_jitter(start, max_seconds=-1)

    def test_retry_backoff_grows_and_is_capped(self):
        rng = random.Random(3)
        for attempt, ceiling in [(1, 300), (2, 600), (3, 1200), (6, 9600), (7, 6 * 3600), (60, 6 * 3600)]:
            delay = retry_backoff(attempt, rng=rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling
        with pytest.raises(ValueError):
            retry_backoff(0)


class TestPlanSend:
    SETTINGS = {
        "send_window": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"},
        "timezone": "Europe/Paris",
    }

    def test_the_contacts_zone_overrides_the_campaigns(self):
        monday_early = utc(2026, 3, 2, 5, 0)
        assert plan_send(monday_early, settings=self.SETTINGS) == local("Europe/Paris", 2026, 3, 2, 9, 0)
        assert plan_send(monday_early, settings=self.SETTINGS, contact_tz=NEW_YORK) == local(NEW_YORK, 2026, 3, 2, 9, 0)

    def test_an_invalid_contact_zone_falls_back_to_the_campaigns(self):
        monday_early = utc(2026, 3, 2, 5, 0)
        assert plan_send(monday_early, settings=self.SETTINGS, contact_tz="Not/AZone") == local(
            "Europe/Paris", 2026, 3, 2, 9, 0
        )

    def test_the_windows_own_zone_comes_before_the_campaigns(self):
        settings = {**self.SETTINGS, "send_window": {**self.SETTINGS["send_window"], "timezone": "Asia/Tokyo"}}
        assert plan_send(utc(2026, 3, 1, 20, 0), settings=settings) == local("Asia/Tokyo", 2026, 3, 2, 9, 0)
        assert plan_send(utc(2026, 3, 1, 20, 0), settings=settings, contact_tz=NEW_YORK) == local(
            NEW_YORK, 2026, 3, 2, 9, 0
        )

    def test_no_settings_means_any_time(self):
        assert plan_send(utc(2026, 3, 7, 3, 0)) == utc(2026, 3, 7, 3, 0)
        assert plan_send(utc(2026, 3, 7, 3, 0), settings={"timezone": NEW_YORK}) == utc(2026, 3, 7, 3, 0)

    def test_every_rule_together(self):
        settings = {
            **self.SETTINGS,
            "daily_cap": 2,
            "min_gap_seconds": 600,
            "skip_holidays": "FR",
        }
        # Thursday 2026-05-07 16:55 Paris; the previous send was at 16:50, so the gap lands at 17:00
        # (closed); Friday 2026-05-08 is Victory in Europe Day; Monday 2026-05-11 is already full.
        earliest = local("Europe/Paris", 2026, 5, 7, 16, 55).astimezone(UTC)
        result = plan_send(
            earliest,
            settings=settings,
            last_sent_at=local("Europe/Paris", 2026, 5, 7, 16, 50).astimezone(UTC),
            sent_on_day={date(2026, 5, 11): 2},
        )
        assert result == local("Europe/Paris", 2026, 5, 12, 9, 0)

    def test_jitter_is_added_before_the_rules(self):
        result = plan_send(utc(2026, 3, 2, 9, 0), settings={}, jitter_seconds=60, rng=random.Random(5))
        assert utc(2026, 3, 2, 9, 0) <= result <= utc(2026, 3, 2, 9, 1)

    def test_the_cap_is_ignored_without_counts(self):
        settings = {**self.SETTINGS, "daily_cap": 1}
        candidate = local("Europe/Paris", 2026, 3, 2, 10, 0).astimezone(UTC)
        assert plan_send(candidate, settings=settings) == candidate


class TestNextDue:
    STEP = SimpleNamespace(delay_days=2, delay_hours=3)

    def test_step_delay_and_the_plain_form_are_unchanged(self):
        assert step_delay(self.STEP) == timedelta(days=2, hours=3)
        assert next_due(utc(2026, 3, 2, 10), self.STEP) == utc(2026, 3, 4, 13)

    def test_with_settings_it_lands_in_the_window(self):
        settings = {"send_window": WEEKDAYS_9_TO_5, "timezone": BERLIN}
        # Thursday 10:00Z + 2d3h = Saturday 13:00Z -> Monday 09:00 Berlin.
        assert next_due(utc(2026, 3, 5, 10), self.STEP, settings=settings) == local(BERLIN, 2026, 3, 9, 9, 0)
        assert next_due(utc(2026, 3, 5, 10), self.STEP, settings=settings, contact_tz=NEW_YORK) == local(
            NEW_YORK, 2026, 3, 9, 9, 0
        )


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
