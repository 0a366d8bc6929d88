"""The HTTP endpoints every process serves: `POST /events` and health."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from faststream.asgi import AsgiResponse, Request, get, post
from faststream.asgi.request import AsgiRequest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway import batch
from services.gateway.service import Gateway, status_of
from services.metrics import Metrics
from shared.auth import AuthError, authenticate
from shared.bus import Bus
from shared.partners import PartnerRegistry
from shared.inbound import Accepted


def json_response(data: Any, status: int = 200) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(data, separators=(",", ":")).encode(),
        status,
        {"Content-Type": "application/json"},
    )


def core_routes(
    bus: Bus, redis: Redis, gateway: Gateway, metrics: Metrics, max_bytes: int, max_lag: int
) -> list[tuple[str, Any]]:
    @post(description="Send one signed CloudEvent; 202 with its id, or 4xx with the reason.")
    async def events(request: Request) -> AsgiResponse:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(batch.MEDIA_TYPE):
            return await batch_events(request)
        if "ce-specversion" in request.headers:
            return await binary_event(request)
        if not content_type.startswith("application/cloudevents+json"):
            return json_response(
                {
                    "code": "unsupported_media_type",
                    "message": "send Content-Type: application/cloudevents+json",
                    "errors": [],
                },
                415,
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                break  # the gateway rejects it as too large; read no further
        verdict = await gateway.post(bus, body, request.headers.get("x-signature"))
        if isinstance(verdict, Accepted):
            return json_response({"id": verdict.event.id, "source": verdict.event.source}, 202)
        status = {"bad_signature": 401, "missing_signature": 401, "unknown_partner": 401,
                  "acting_for_another": 403, "too_large": 413}.get(verdict.code, 422)
        return json_response(verdict.reason(), status)

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
        return json_response(answer.reason(), status_of(answer))

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
        return json_response(verdict.reason(), status_of(verdict))

    @get(description="The process is up.")
    async def live(request: Request) -> AsgiResponse:
        return json_response({"status": "live"})

    @get(description="Redis reachable, every consumer group in place, consumers running, lag under the threshold.")
    async def ready(request: Request) -> AsgiResponse:
        try:
            await redis.ping()
            lags = await metrics.lags()
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
        return json_response({"status": "ready", "consumer": bus.consumer})

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
    return json_response({"code": "bad_request", "message": message, "errors": []}, 400)


class PathParams:
    """ASGI wrapper: a request to a path matching a route pattern such as `/contracts/{id}` goes
    to that route's handler (FastStream's ASGI app matches exact paths only; the pattern is
    registered with it as well, so the handler is set up and documented)."""

    def __init__(self, app: Any, routes: list[tuple[str, Any]]) -> None:
        self.app = app
        self.patterns = [
            (re.compile("^" + re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(path)) + "$"), handler)
            for path, handler in routes if "{" in path
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for pattern, handler in self.patterns:
                if pattern.match(scope["path"]):
                    await handler(scope, receive, send)
                    return
        await self.app(scope, receive, send)
