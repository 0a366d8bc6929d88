"""Rate limits and rejection records: pure parts (issue 16)."""

from __future__ import annotations

import hashlib

from services.gateway.rejections import RejectionPolicy, record
from shared.inbound import Rejected
from shared.ratelimit import RateLimiter, retry_after
from shared.streams import Streams


def test_the_defaults_never_refuse_a_bulk_load_of_1000_a_second_after_a_burst_of_10000() -> None:
    limits = RateLimiter(1_000, 10_000)
    assert all(limits.take("p", 0.0) == 0 for _ in range(10_000))  # the burst, all at once
    # then a minute at 1,000 a second, evenly
    assert all(limits.take("p", 0.001 * (i + 1)) == 0 for i in range(60_000))


def test_over_the_limit_says_how_long_to_wait() -> None:
    limits = RateLimiter(2, 3)
    assert [limits.take("p", 10.0) for _ in range(3)] == [0, 0, 0]
    wait = limits.take("p", 10.0)
    assert wait == 0.5 and retry_after(wait) == "1"
    assert limits.take("q", 10.0) == 0, "each key its own bucket"
    assert limits.take("p", 10.5) == 0, "a token back after 1/rate seconds"
    assert limits.take("p", 9.0) > 0, "a clock that runs back adds nothing"


def test_a_rate_of_zero_switches_the_limit_off() -> None:
    limits = RateLimiter(0, 1)
    assert all(limits.take("p", 0.0) == 0 for _ in range(100))


def test_buckets_for_many_addresses_stay_bounded() -> None:
    limits = RateLimiter(1, 1, max_keys=100)
    for n in range(10_000):
        limits.take(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limits) == 100


def _fields(cmd: tuple) -> dict:
    assert cmd[:5] == ("XADD", cmd[1], "MAXLEN", "~", cmd[4]) and cmd[5] == "*"
    it = iter(cmd[6:])
    return dict(zip(it, it, strict=True))


def test_an_unauthenticated_rejection_keeps_a_digest_the_size_and_the_first_bytes() -> None:
    raw = b"x" * 60_000
    cmd = record(
        Streams("P"), RejectionPolicy(1_000, 10, 256), Rejected("unknown", "unknown_partner", "m"), raw, "1-0"
    )
    f = _fields(cmd)
    assert cmd[1] == "P:rejected:unknown" and cmd[4] == 10
    assert f["event"] == raw[:256] and f["size"] == "60000" and f["sha256"] == hashlib.sha256(raw).hexdigest()


def test_an_authenticated_partners_rejection_keeps_its_bytes_in_its_capped_stream() -> None:
    raw = b"y" * 1000
    cmd = record(
        Streams("P"),
        RejectionPolicy(1_000, 10, 256),
        Rejected("tamworth-bc", "invalid_data", "m", authenticated=True),
        raw,
        "1-0",
    )
    assert cmd[1] == "P:rejected:tamworth-bc" and cmd[4] == 1_000 and _fields(cmd)["event"] == raw


def test_too_large_and_rate_limited_keep_no_body_or_only_its_start() -> None:
    policy = RejectionPolicy(1_000, 10, 256)
    f = _fields(
        record(Streams("P"), policy, Rejected("unknown", "too_large", "m"), None, "http", size=5_000_000)
    )
    assert f["event"] == b"" and f["size"] == "5000000" and "sha256" not in f
    f = _fields(
        record(
            Streams("P"), policy, Rejected("p", "rate_limited", "m", authenticated=True), b"z" * 900, "1-0"
        )
    )
    assert f["event"] == b"z" * 256 and f["size"] == "900"


def test_readiness_warns_before_redis_is_full_and_fails_just_before() -> None:
    from services.http import memory_state

    assert memory_state(500, 0, 0.8) == (200, {})  # no limit set
    assert memory_state(79, 100, 0.8) == (200, {})
    status, body = memory_state(80, 100, 0.8)
    assert status == 200 and "80% of its" in body["warning"]
    status, body = memory_state(90, 100, 0.8)
    assert status == 503 and "refused when full" in body["reason"]


def test_an_outage_is_said_once_then_once_a_minute_then_when_it_ends() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from structlog.testing import capture_logs

    from shared.outage import Outage

    now = [0.0]
    outage = Outage(clock=lambda: now[0])
    with capture_logs() as logs:
        for _ in range(100):  # two minutes of failed rounds, ten a second... and one bug
            now[0] += 1.3
            outage.failed(RedisConnectionError("refused"), "sweep")
        outage.failed(ValueError("a bug"), "sweep")
        outage.ok()
        outage.ok()
        now[0] += 1
        outage.failed(RedisConnectionError("stale"), "sweep")  # an old pooled connection, just after
    said = [(x["log_level"], x["event"]) for x in logs]
    assert said == [
        ("warning", "redis unreachable; retrying, work left pending"),
        ("warning", "redis still unreachable; retrying"),
        ("warning", "redis still unreachable; retrying"),
        ("error", "sweep failed; will retry"),
        ("warning", "redis reachable again"),
    ]
    assert logs[-1]["failed_attempts"] == 100 and logs[3]["exc_info"]
