"""One reading of --since for usage reports and audit exports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fabrique.since import moment

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", NOW - timedelta(minutes=30)), ("12h", NOW - timedelta(hours=12)),
    ("7d", NOW - timedelta(days=7)), ("2w", NOW - timedelta(weeks=2)),
    ("1.5h", NOW - timedelta(minutes=90)),
    ("2026-06-01", datetime(2026, 6, 1, tzinfo=UTC)),
    ("2026-06-01T08:00Z", datetime(2026, 6, 1, 8, tzinfo=UTC)),
    ("2026-06-01T08:00+02:00", datetime(2026, 6, 1, 6, tzinfo=UTC)),
])
def test_ages_and_dates(text, expected):
    assert moment(text, NOW) == expected


def test_anything_else_says_what_is_expected():
    with pytest.raises(ValueError, match=r"'last tuesday' is neither an age \(30m, 12h, 7d, 2w\)"):
        moment("last tuesday", NOW)
