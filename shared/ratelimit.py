"""Token buckets per partner and per source address, kept in the process that checks.

Why in process and not in Redis: a bucket is consulted for every event, and the gateway
handles hundreds per batch; a Redis round trip each would cost more than the check it
guards, and a bucket per hostile address would be a Redis key an attacker can multiply.
The cost: with N gateway processes a partner may send up to N times the rate, so the
limits are per process (README, "Limits and retention"). Memory is bounded: buckets for at
most `max_keys` keys, the least recently used forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` tokens a second, up to `burst`; each event takes one."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float, n: int = 1) -> float:
        """0 when `n` tokens were taken; else the seconds until they would be there (none taken).
        `now` may be any clock (the stream uses its entries' arrival times); it never runs back."""
        if self.rate <= 0:  # limits switched off
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if now > bucket.at:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= n - 1e-9:  # float sums of rate * elapsed fall a hair short
            bucket.tokens -= n
            return 0.0
        return (n - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """The `Retry-After` header: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
