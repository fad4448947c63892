"""Public holidays by country code, from the `holidays` package.

A code is an ISO 3166 country, optionally with a subdivision: ``US``, ``DE``, ``DE-BY`` (Bavaria),
``US-CA``. Observed days count too (in the US, 2026-07-03 stands in for Saturday 2026-07-04).
"""

import functools
import re
from datetime import date

import holidays as holiday_calendars

_CODE = re.compile(r"([A-Z]{2})(?:-([A-Z0-9]{1,3}))?")


def parse_country(code: str) -> tuple[str, str | None]:
    """Split ``"DE-BY"`` into ``("DE", "BY")``; raise ValueError if it is not shaped like a country code."""
    match = _CODE.fullmatch(code.strip().upper()) if isinstance(code, str) else None
    if not match:
        raise ValueError(f"{str(code)[:20]!r} is not a country code such as US or DE-BY")
    return match.group(1), match.group(2)


@functools.cache
def supported_codes() -> tuple[str, ...]:
    """Every code with a calendar, countries and their subdivisions (``US``, ``US-CA``...), sorted."""
    calendars = holiday_calendars.list_supported_countries(include_aliases=False)
    codes = [*calendars, *(f"{country}-{sub}" for country, subs in calendars.items() for sub in subs)]
    return tuple(sorted(code for code in codes if _CODE.fullmatch(code)))


def check_country(code: str) -> str:
    """Return the normalized code if a holiday calendar exists for it; raise ValueError otherwise."""
    country, subdivision = parse_country(code)
    normalized = f"{country}-{subdivision}" if subdivision else country
    # Any year works to prove the calendar exists; a fixed one keeps this free of the clock.
    holiday_dates(normalized, 2026)
    return normalized


@functools.lru_cache(maxsize=1024)
def holiday_dates(code: str, year: int) -> frozenset[date]:
    """The public holidays of `code` in `year`. Raises ValueError when there is no calendar for the code."""
    country, subdivision = parse_country(code)
    try:
        calendar = holiday_calendars.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError:
        raise ValueError(f"no holiday calendar for {code!r}") from None
    return frozenset(day for day in calendar if day.year == year)


def is_holiday(day: date, code: str | None) -> bool:
    """True when `day` is a public holiday of `code`; always False when `code` is None or empty."""
    return bool(code) and day in holiday_dates(code, day.year)
