from datetime import UTC, datetime

import pytest

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def now(time_machine):
    """The clock stopped at NOW, a Tuesday morning."""
    time_machine.move_to(NOW, tick=False)
    return NOW
