"""The HTTP endpoints every process serves (`POST /events`, health) and the answers all of
them share. FastAPI routes (services.runtime puts them on one app with the bus); each answer is
built here byte for byte, so a route's documentation never changes what it sends."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from faststream.specification.asyncapi.site import get_asyncapi_html
from faststream.specification.base import SpecificationFactory
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway import batch
from services.gateway.service import GROUP, Gateway, status_of
from services.metrics import Metrics
from shared.bus import Bus
from shared.inbound import UNKNOWN, Accepted, Rejected
from shared.limits import TooLarge, check_size
from shared.ratelimit import RateLimiter, retry_after

log = structlog.get_logger("http")


class Reason(BaseModel):
    """Why a request was refused (the reason document of CONTRACT.md)."""

    code: str
    message: str
    errors: list[Any]


class Received(BaseModel):
    id: str
    source: str


class Refusal(Exception):
    """An answer given from a dependency (a missing credential): the app sends `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def refused(request: Request, exc: Exception) -> Response:
    """The app's handler for `Refusal`."""
    assert isinstance(exc, Refusal)
    return exc.response


def answer(
    body: bytes, content_type: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response with exactly this body and Content-Type (Starlette would add a charset)."""
    return Response(body, status, {"Content-Type": content_type, **(headers or {})})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return answer(json.dumps(data, separators=(",", ":")).encode(), "application/json", status, headers)


def refusal(code: str, message: str, status: int) -> Response:
    return json_response({"code": code, "message": message, "errors": []}, status)


def bad_request(message: str) -> Response:
    return refusal("bad_request", message, 400)


def too_many(wait: float, message: str, reason: dict[str, Any] | None = None) -> Response:
    """429 with `Retry-After` (whole seconds)."""
    return json_response(
        reason or {"code": "rate_limited", "message": message, "errors": []},
        429,
        {"Retry-After": retry_after(wait)},
    )


def client_address(request: Request) -> str:
    """The peer's address (a proxy in front should limit by the original address itself)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def target(request: Request) -> str:
    """The path and query a partner signed (shared.auth)."""
    query = request.scope.get("query_string", b"").decode()
    return str(request.scope["path"]) + (f"?{query}" if query else "")


async def read_limited(request: Request, limit: int) -> bytes:
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


_REASON = {"model": Reason}
#: POST /events reads its body itself (no parsing per request, and the size limit stops reading
#: early); the schema says what it takes
_EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/cloudevents+json": {
                "schema": {"type": "object", "description": "One CloudEvent (CONTRACT.md), at most 64 KiB"}
            },
            "application/cloudevents-batch+json": {
                "schema": {
                    "type": "array",
                    "maxItems": batch.MAX_EVENTS,
                    "items": {"type": "object"},
                    "description": "Up to 1,000 CloudEvents of one partner, at most 4 MiB",
                }
            },
        },
    },
    "parameters": [
        {
            "name": "X-Signature",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
            "description": "sha256=<hex HMAC-SHA256 of the body under the partner's secret> "
            "(binary mode signs with RFC 9421 Signature headers instead)",
        }
    ],
}


def core_routes(
    bus: Bus,
    redis: Redis,
    gateway: Gateway,
    metrics: Metrics,
    max_bytes: int,
    max_lag: int,
    addresses: RateLimiter | None = None,
    memory_warn_ratio: float = 0.8,
) -> APIRouter:
    addresses = RateLimiter(1_000, 10_000) if addresses is None else addresses
    router = APIRouter()

    @router.post(
        "/events",
        tags=["events"],
        summary="Send signed CloudEvents",
        description="One signed CloudEvent (structured or binary mode), or a batch "
        "(`application/cloudevents-batch+json`): 202 with its id, 207 with one result per event "
        "of a batch, or 4xx with the reason (413 over 64 KiB, or 4 MiB for a batch; 429 with "
        "Retry-After over the rate limit; 503 with Retry-After when the bus is unreachable).",
        status_code=202,
        responses={
            202: {"model": Received, "description": "Accepted"},
            207: {"description": "A batch: one result per event, in order"},
            **{status: _REASON for status in (400, 401, 403, 413, 415, 422, 429, 503)},
        },
        openapi_extra=_EVENTS_BODY,
    )
    async def events(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(batch.MEDIA_TYPE):
            return await batch_events(request)
        if "ce-specversion" in request.headers:
            return await binary_event(request)
        if not content_type.startswith("application/cloudevents+json"):
            return refusal("unsupported_media_type", "send Content-Type: application/cloudevents+json", 415)
        wait = addresses.take(client_address(request), time.monotonic())
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

    async def batch_events(request: Request) -> Response:
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

    async def binary_event(request: Request) -> Response:
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

    @router.get("/health/live", tags=["operations"], summary="The process is up.")
    async def live() -> Response:
        return json_response({"status": "live"})

    @router.get(
        "/health/ready",
        tags=["operations"],
        summary="Ready to serve",
        description="Redis reachable, every consumer group in place, consumers running, lag under "
        "the threshold, Redis memory under its limit; 503 with the reason otherwise.",
    )
    async def ready() -> Response:
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

    return router


def docs_routes(events: SpecificationFactory) -> APIRouter:
    """The event API's document (AsyncAPI) as a page and as JSON. The HTTP API's own is FastAPI's,
    at /docs/openapi.json."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs/asyncapi")
    async def page() -> Response:
        html = get_asyncapi_html(events.to_specification(), try_it_out_path=None)
        return answer(html.encode(), "text/html; charset=utf-8")

    @router.get("/docs/asyncapi.json")
    async def document() -> Response:
        return json_response(events.to_specification().to_jsonable())

    return router
