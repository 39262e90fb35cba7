"""``--since`` and ``?since=``, for usage reports and audit exports alike: a moment given as
an age (30m, 12h, 7d, 2w) or as an ISO date or time (UTC unless it says)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str, now: datetime | None = None) -> datetime:
    """The moment ``text`` names; ValueError saying what is expected."""
    age = _AGE.fullmatch(text.strip())
    if age:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[age.group(2)]: float(age.group(1))})
    try:
        found = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an age (30m, 12h, 7d, 2w) nor an ISO date or time "
                         "(2026-06-01, 2026-06-01T08:00Z)") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)
