"""``--since`` and ``?since=`` of audit exports, as epoch milliseconds."""

from __future__ import annotations

from fabrique.since import moment


def parse_since(text: str) -> int:
    """Epoch milliseconds from an age (7d, 12h, 30m, 2w) or an ISO date or time."""
    try:
        return int(moment(text).timestamp() * 1000)
    except ValueError as exc:
        raise ValueError(f"--since {exc}") from None
