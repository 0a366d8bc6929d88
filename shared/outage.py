"""Quiet retries while Redis is away: one warning when it goes, one line a minute with the
retry state while it stays away, one line when it is back; never a traceback per retry.

Every loop that retries on its own (the bus's sweepers and retention, the states' refresh)
reports here; anything that is not a Redis connection error is still logged in full.
"""

from __future__ import annotations

import time

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger("redis")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
#: seconds between "still unreachable" lines
REPEAT_S = 60.0


class Outage:
    def __init__(self) -> None:
        self.since: float | None = None
        self.failures = 0
        self._said = 0.0

    def failed(self, error: BaseException, what: str) -> None:
        """A retrying loop (`what`) failed with `error`: logged once per outage if Redis is away."""
        if not isinstance(error, UNREACHABLE):
            log.error(f"{what} failed; will retry", exc_info=error)
            return
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since, self._said = now, now
            log.warning("redis unreachable; retrying, work left pending", error=str(error), first=what)
        elif now - self._said >= REPEAT_S:
            self._said = now
            log.warning("redis still unreachable; retrying", seconds=round(now - self.since),
                        failed_attempts=self.failures, error=str(error))

    def ok(self) -> None:
        """A retrying loop succeeded: if Redis had been away, say it is back."""
        if self.since is not None:
            log.warning("redis reachable again", seconds=round(time.monotonic() - self.since),
                        failed_attempts=self.failures)
            self.since, self.failures = None, 0


#: one per process: every loop shares what it knows about Redis
OUTAGE = Outage()
