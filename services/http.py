"""The HTTP endpoints every process serves: `POST /events` and health."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from faststream.asgi import AsgiResponse, Request, get, post
from faststream.asgi.request import AsgiRequest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway import batch
from services.gateway.service import GROUP, Gateway, status_of
from services.metrics import Metrics
from shared.auth import AuthError, authenticate
from shared.bus import Bus
from shared.inbound import UNKNOWN, Accepted, Rejected
from shared.limits import TooLarge, check_size
from shared.partners import PartnerRegistry
from shared.ratelimit import RateLimiter, retry_after


log = structlog.get_logger("http")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(data, separators=(",", ":")).encode(),
        status,
        {"Content-Type": "application/json", **(headers or {})},
    )


def refusal(code: str, message: str, status: int) -> AsgiResponse:
    return json_response({"code": code, "message": message, "errors": []}, status)


def too_many(wait: float, message: str, reason: dict[str, Any] | None = None) -> AsgiResponse:
    """429 with `Retry-After` (whole seconds)."""
    return json_response(
        reason or {"code": "rate_limited", "message": message, "errors": []},
        429,
        {"Retry-After": retry_after(wait)},
    )


def client_address(scope: Any) -> str:
    """The peer's address (a proxy in front should limit by the original address itself)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def read_limited(request: AsgiRequest, limit: int) -> bytes:
    """The body, or `TooLarge` before it is read in full: at once by its Content-Length, else
    as soon as more than `limit` bytes have arrived (for POST /events and its batch mode)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        check_size(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        check_size(size, limit)  # chunked, or a Content-Length that understated: stop reading here
        chunks.append(chunk)
    return b"".join(chunks)


def memory_state(used: int, limit: int, warn_ratio: float) -> tuple[int, dict[str, Any]]:
    """Readiness by Redis memory under a limit: a warning from `warn_ratio` of it; not ready
    when less than half that margin is left (writes will soon be refused: noeviction)."""
    if not limit or used < warn_ratio * limit:
        return 200, {}
    share = f"Redis holds {used / limit:.0%} of its {limit // 2**20} MiB limit"
    if used >= (1 + warn_ratio) / 2 * limit:
        return 503, {"reason": f"{share}: writes will be refused when full; raise maxmemory or trim"}
    return 200, {"warning": f"{share}: raise maxmemory or look at what grows (commissioning_redis_memory_*)"}


def core_routes(
    bus: Bus,
    redis: Redis,
    gateway: Gateway,
    metrics: Metrics,
    max_bytes: int,
    max_lag: int,
    addresses: RateLimiter | None = None,
    memory_warn_ratio: float = 0.8,
) -> list[tuple[str, Any]]:
    addresses = RateLimiter(1_000, 10_000) if addresses is None else addresses

    @post(
        description="Send one signed CloudEvent; 202 with its id, or 4xx with the reason "
        "(413 over 64 KiB, 429 with Retry-After over the rate limit)."
    )
    async def events(scope: Any, request: Request) -> AsgiResponse:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(batch.MEDIA_TYPE):
            return await batch_events(request)
        if "ce-specversion" in request.headers:
            return await binary_event(request)
        if not content_type.startswith("application/cloudevents+json"):
            return refusal("unsupported_media_type", "send Content-Type: application/cloudevents+json", 415)
        wait = addresses.take(client_address(scope), time.monotonic())
        if wait > 0:
            return too_many(wait, "this address is sending faster than its limit")
        try:
            body = await read_limited(request, max_bytes)
        except TooLarge as e:
            verdict = Rejected(UNKNOWN, "too_large", str(e))
            with contextlib.suppress(RedisError):  # refused all the same when it cannot be recorded
                await bus.apply_now(GROUP, gateway.reject(verdict, None, "http", size=e.size))
            return json_response(verdict.reason(), 413)
        try:
            verdict = await gateway.post(bus, body, request.headers.get("x-signature"))
        except RedisError as e:  # not the sender's fault: it may send again
            reason = {"code": "unavailable", "message": f"the bus is unreachable: {e}", "errors": []}
            return json_response(reason, 503, {"Retry-After": "5"})
        if isinstance(verdict, Accepted):
            return json_response({"id": verdict.event.id, "source": verdict.event.source}, 202)
        if verdict.retry_after is not None:
            return too_many(verdict.retry_after, verdict.message, verdict.reason())
        return json_response(verdict.reason(), status_of(verdict.code))

    async def batch_events(request: Request) -> AsgiResponse:
        """Batch mode (contract 1.1): 207 with one result per event, or one 4xx for the batch."""
        message = f"a batch is at most {batch.MAX_BYTES} bytes"
        too_large = json_response({"code": "too_large", "message": message, "errors": []}, 413)
        if int(request.headers.get("content-length") or 0) > batch.MAX_BYTES:
            return too_large  # refused before the body is read
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > batch.MAX_BYTES:
                return too_large  # the rest is never read, nothing is kept
        answer = await gateway.post_batch(bus, body, request.headers.get("x-signature"))
        if isinstance(answer, list):
            return json_response(answer, 207)
        return json_response(answer.reason(), status_of(answer.code))

    async def binary_event(request: Request) -> AsgiResponse:
        """CloudEvents binary mode, signed with RFC 9421 (services/gateway/binary.py)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                message = f"an event is at most {max_bytes} bytes"
                return json_response({"code": "too_large", "message": message, "errors": []}, 413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        verdict = await gateway.post_binary(bus, headers, body)
        if isinstance(verdict, Accepted):
            return json_response({"id": verdict.event.id, "source": verdict.event.source}, 202)
        return json_response(verdict.reason(), status_of(verdict.code))

    @get(description="The process is up.")
    async def live(request: Request) -> AsgiResponse:
        return json_response({"status": "live"})

    @get(
        description="Redis reachable, every consumer group in place, consumers running, lag under the threshold."
    )
    async def ready(request: Request) -> AsgiResponse:
        try:
            await redis.ping()
            lags = await metrics.lags()
            status, memory = memory_state(*await metrics.memory(), memory_warn_ratio)
        except RedisError as e:
            return json_response({"status": "not ready", "reason": f"redis: {e}"}, 503)
        missing = [f"{s.group}@{s.stream}" for s in bus.subscriptions if (s.group, s.stream) not in lags]
        if missing:
            return json_response({"status": "not ready", "reason": "missing groups", "groups": missing}, 503)
        if not bus.running:
            return json_response({"status": "not ready", "reason": "consumers not running"}, 503)
        behind = {f"{g}@{s}": lag for (g, s), lag in lags.items() if lag is not None and lag > max_lag}
        if behind:
            return json_response({"status": "not ready", "reason": f"lag over {max_lag}", "lag": behind}, 503)
        if status != 200:
            return json_response({"status": "not ready", **memory}, status)
        if memory:
            log.warning("redis memory", **memory)
        return json_response({"status": "ready", "consumer": bus.consumer, **memory})

    return [("/events", events), ("/health/live", live), ("/health/ready", ready)]


#: (partner id, request, path) -> the answer
PartnerView = Callable[[str, AsgiRequest, str], dict[str, Any] | AsgiResponse]


def partner_get(registry: PartnerRegistry, description: str, view: PartnerView) -> Any:
    """A GET endpoint for one partner's own data: the request is signed (shared.auth) and
    `view(partner_id, request)` answers it; 401 with a reason otherwise."""

    @get(description=description)
    async def handler(scope: Any, request: Request) -> AsgiResponse:
        query = scope.get("query_string", b"").decode()
        target = scope["path"] + (f"?{query}" if query else "")
        try:
            pid = authenticate(registry, request.method, target, request.headers.get("authorization"))
        except AuthError as e:
            return json_response({"code": e.code, "message": str(e), "errors": []}, 401)
        answer = view(pid, request, scope["path"])
        return answer if isinstance(answer, AsgiResponse) else json_response(answer)

    return handler


def bad_request(message: str) -> AsgiResponse:
    return refusal("bad_request", message, 400)


class PathParams:
    """ASGI wrapper: a request to a path matching a route pattern such as `/contracts/{id}` goes
    to that route's handler (FastStream's ASGI app matches exact paths only; the pattern is
    registered with it as well, so the handler is set up and documented)."""

    def __init__(self, app: Any, routes: list[tuple[str, Any]]) -> None:
        self.app = app
        self.patterns = [
            (re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(path)) + "$"), handler)
            for path, handler in routes
            if "{" in path
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for pattern, handler in self.patterns:
                if pattern.match(scope["path"]):
                    await handler(scope, receive, send)
                    return
        await self.app(scope, receive, send)
