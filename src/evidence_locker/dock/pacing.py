"""Pacing: a bandwidth cap shared by every bay, and back-off between retries.

A station's uplink is shared with everything else the station does; `--max-mbps` keeps the dock
from filling it. Retries back off exponentially with full jitter (a random wait between zero and
the exponential bound) so that a thousand docks coming back after an outage do not arrive in
step. Both take an injected clock and sleep, so they are tested without waiting.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class TokenBucket:
    """Bytes per second, shared across threads; bursts of at most `burst` bytes."""

    def __init__(self, bytes_per_second: float, *, burst: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if bytes_per_second <= 0:
            raise ValueError("the rate must be positive")
        self.rate = float(bytes_per_second)
        # A quarter of a second of traffic, at least 64 KiB: smooth without tiny writes.
        self.burst = float(burst if burst is not None else max(64 * 1024, self.rate / 4))
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.burst
        self._last = monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Block until `n` bytes may be sent (n larger than the burst is taken in pieces)."""
        remaining = float(n)
        while remaining > 0:
            piece = min(remaining, self.burst)
            with self._lock:
                now = self._monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                self._tokens -= piece  # may go negative: the debt is the wait
                wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if wait > 0:
                self._sleep(wait)
            remaining -= piece


@dataclass(frozen=True)
class RetryPolicy:
    """`budget` quick retries (exponential from `base` up to `cap`, full jitter); once spent, the
    failure is an outage: wait `outage_wait` (or what Retry-After asks, up to `max_wait`) and
    start a new budget. Never gives up. A refused token waits `auth_wait` between tries."""

    base: float = 0.5
    cap: float = 30.0
    budget: int = 8
    outage_wait: float = 60.0
    auth_wait: float = 300.0
    max_wait: float = 900.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
        bound = min(self.cap, self.base * 2 ** max(0, attempt))
        return (rng or _RNG).uniform(0, bound)


_RNG = random.Random()  # noqa: S311 - jitter, not security


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (the delta form; an HTTP date is read as 'a while')."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
