"""A circuit breaker per deployment: closed → open after N failures → half-open probe."""

from __future__ import annotations

import time


class CircuitBreaker:
    """Counts consecutive failures; while open, lets one probe through per cooldown."""

    __slots__ = ("cooldown_s", "failures", "opened_at", "probing", "threshold")

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a request go to this deployment now? Claims the probe when half-open."""
        if self.opened_at is None:
            return True
        if self.probing or time.monotonic() - self.opened_at < self.cooldown_s:
            return False
        self.probing = True
        return True

    def release_probe(self) -> None:
        """The probe was abandoned (cancelled) without a verdict: let another one try."""
        self.probing = False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at = time.monotonic()  # (re)open: a failed probe restarts the cooldown
        self.probing = False
