"""``--since`` and ``?since=``: a moment given as an ISO date or time, or as an age."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def parse_since(text: str) -> int:
    """Epoch milliseconds from an ISO date or time (UTC unless given) or an age: 7d, 12h, 30m."""
    age = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if age:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[age.group(2)]
        moment = datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--since {text!r}: expected an ISO date or time (2026-06-01, "
                             "2026-06-01T08:00Z) or an age (7d, 12h, 30m)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
