"""When each step of an enrollment is due."""

from datetime import datetime, timedelta


def step_delay(step) -> timedelta:
    return timedelta(days=step.delay_days, hours=step.delay_hours)


def next_due(previous: datetime, step) -> datetime:
    """The earliest time `step` may run after the previous action at `previous`."""
    return previous + step_delay(step)
