"""Quiet retries while Redis is away: one warning when it goes, one line a minute with the
retry state while it stays away, one line when it is back; never a traceback per retry.

Every loop that retries on its own (the bus's sweepers and retention, the states' refresh)
reports here; anything that is not a Redis connection error is still logged in full.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = structlog.get_logger("redis")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
#: seconds between "still unreachable" lines
REPEAT_S = 60.0
#: seconds after Redis is back in which a connection error is taken for a stale connection
SETTLE_S = 5.0


class Outage:
    def __init__(self, repeat_s: float = REPEAT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.repeat_s, self.clock = repeat_s, clock
        self.since: float | None = None
        self.failures = 0
        self._said = 0.0
        self._back = float("-inf")
        #: outages ended so far: Redis may come back older than it went (a replica promoted, a
        #: restart from its append-only file), so what a process holds in memory is read again
        self.epoch = 0

    def failed(self, error: BaseException, what: str) -> None:
        """A retrying loop (`what`) failed with `error`: logged once per outage if Redis is away."""
        if not isinstance(error, UNREACHABLE):
            log.error(f"{what} failed; will retry", exc_info=error)
            return
        now = self.clock()
        if self.since is None and now - self._back < SETTLE_S:
            return  # a pooled connection from before the outage, failing once as it is replaced
        self.failures += 1
        if self.since is None:
            self.since, self._said = now, now
            log.warning("redis unreachable; retrying, work left pending", error=str(error), first=what)
        elif now - self._said >= self.repeat_s:
            self._said = now
            log.warning(
                "redis still unreachable; retrying",
                seconds=round(now - self.since),
                failed_attempts=self.failures,
                error=str(error),
            )

    def ok(self) -> None:
        """A retrying loop succeeded: if Redis had been away, say it is back."""
        if self.since is not None:
            log.warning(
                "redis reachable again",
                seconds=round(self.clock() - self.since),
                failed_attempts=self.failures,
            )
            self.since, self.failures, self._back = None, 0, self.clock()
            self.epoch += 1


#: one per process: every loop shares what it knows about Redis
OUTAGE = Outage()
