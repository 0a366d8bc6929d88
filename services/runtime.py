"""Bootstrap: wires settings, Redis, the bus, the gateway and the chosen services into one
application, served by uvicorn until SIGTERM or Ctrl-C: FastAPI for HTTP, with the bus on
FastStream's own FastAPI integration (its router starts and stops the broker in the app's
lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
import uvicorn
from fastapi import FastAPI
from faststream.redis import RedisClusterBroker, RedisRouter
from faststream.redis.fastapi import RedisRouter as RedisFastAPIRouter
from faststream.specification import AsyncAPI
from faststream.specification.base import SpecificationFactory
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from services.contracts.app import build as build_contracts
from services.docs import declare
from services.gateway.rejections import RejectionPolicy
from services.gateway.service import Gateway
from services.http import Refusal, core_routes, docs_routes, refused
from services.metrics import Metrics
from services.needs.app import build as build_needs
from services.oidc import Oidc, OidcSettings, parse_allowed
from services.procurement.app import build as build_procurement
from services.readauth import ReadAuth
from services.savings.app import build as build_savings
from services.service import Context, Service
from shared import collector
from shared.adapters.redis import (
    RedisArchiveMarks,
    RedisCredentials,
    RedisDecisionLog,
    RedisEntries,
    RedisLeaseBoard,
    RedisStateStore,
    RedisUsage,
)
from shared.archive import Archive
from shared.authority import OWNERS
from shared.bus import Bus, Retention, consumer_name
from shared.events import PAYLOADS
from shared.partners import PartnerRegistry
from shared.ports import Credentials
from shared.ratelimit import RateLimiter
from shared.redis_client import connect
from shared.settings import Settings
from shared.streams import Streams

SERVICES: dict[str, Callable[[Context], Service]] = {
    "needs": build_needs,
    "procurement": build_procurement,
    "contracts": build_contracts,
    "savings": build_savings,
}

#: `serve gateway`: a process that only verifies inbound events (scaled apart from the services)
GATEWAY = "gateway"

log = structlog.get_logger("runtime")


#: how long a starting process waits for Redis: in compose or a pod, Redis may start beside it
REDIS_WAIT_S = 10.0


class ConfigurationError(RuntimeError):
    pass


def _where(url: str) -> str:
    """The Redis URL without its credentials, for an error message."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _connect(url: str, cluster: bool = False, **kwargs: object) -> Redis:
    try:
        return connect(url, cluster=cluster, **kwargs)
    except ValueError as e:  # redis-py's "must specify one of the following schemes", ...
        raise ConfigurationError(f"REDIS_URL is not a Redis URL: {e}") from e


async def check_redis(url: str, wait_s: float = REDIS_WAIT_S, cluster: bool = False) -> None:
    """Fail at start, in one line, when Redis cannot be used (a wrong URL, host, password or
    ACL user): a container then exits non-zero with that line instead of logging the
    framework's startup traceback and being restarted into the same one."""
    deadline = time.monotonic() + wait_s
    while True:
        try:  # a cluster client asks its node for the cluster's slots as it is made
            redis = _connect(url, cluster, socket_connect_timeout=2, socket_timeout=5)
            break
        except (RedisError, OSError) as e:
            if time.monotonic() >= deadline:
                raise ConfigurationError(
                    f"cannot reach the Redis cluster at {_where(url)} (REDIS_URL) after {wait_s:.0f}s: {e}"
                ) from e
            await asyncio.sleep(0.5)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                await redis.ping()
                return
            except (AuthenticationError, ResponseError) as e:  # a wrong password or user: no retry helps
                raise ConfigurationError(
                    f"Redis at {_where(url)} (REDIS_URL) refused the connection: {e}"
                ) from e
            except (RedisError, OSError) as e:
                if time.monotonic() >= deadline:
                    raise ConfigurationError(
                        f"cannot reach Redis at {_where(url)} (REDIS_URL) after {wait_s:.0f}s: {e}"
                    ) from e
                await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


class RedisClusterRouter(RedisFastAPIRouter):
    """FastStream's FastAPI router on a Redis Cluster (as its own RedisSentinelRouter is on Sentinel)."""

    broker_class = RedisClusterBroker  # type: ignore[assignment]


class App(FastAPI):
    """The process's one application: its HTTP routes (OpenAPI at /docs/openapi.json) and the
    bus (`stream`, FastStream's FastAPI router; AsyncAPI at /docs/asyncapi)."""

    def __init__(self, stream: RedisFastAPIRouter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream
        self.include_router(stream)  # its lifespan, merged into the app's, runs the broker

    @property
    def schema(self) -> SpecificationFactory:
        """The event API (AsyncAPI): services.apidocs writes docs/asyncapi.json from it."""
        return self.stream.schema

    def openapi(self) -> dict[str, Any]:
        """FastAPI's schema, less the 422 it lists for any route with parameters: no route here
        validates through FastAPI (each answers a bad parameter with 400 and a reason)."""
        if self.openapi_schema is None:
            schema = super().openapi()
            for operations in schema["paths"].values():
                for op in operations.values():
                    if "HTTPValidationError" in json.dumps(op.get("responses", {}).get("422", {})):
                        del op["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return self.openapi_schema  # type: ignore[return-value] - set by super().openapi()

    def start_lifespan_context(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Start and stop as a server would, without one (services.demo runs it in-process)."""
        return self.router.lifespan_context(self)


class _BatchRouter:
    """The bus's subscribers on the stream router's broker. Their handlers take the batch as
    Redis gave it (shared.bus); FastAPI's request-like wrapping of a handler would look for each
    parameter by name inside the batch, so they are put on the broker itself, which hands each
    handler the message (the FastAPI router's broker does not inject FastStream's arguments)."""

    def __init__(self, stream: RedisFastAPIRouter) -> None:
        self.broker = stream.broker

    def subscriber(self, **kwargs: Any) -> Callable[[Callable[[Any], Any]], Any]:
        subscriber = self.broker.subscriber(**kwargs)

        def register(handler: Callable[[Any], Any]) -> Any:
            async def on_message(message: Any) -> None:
                await handler(message.raw_message)

            on_message.__name__ = handler.__name__
            return subscriber(on_message)

        return register


EVENT_API = AsyncAPI(
    title="Shared commissioning event API",
    version="1",
    description="Redis Streams; every entry carries one CloudEvent (JSON) in the field `event`. "
    "See CONTRACT.md.",
)
HTTP_API = {
    "title": "Shared commissioning HTTP API",
    "version": "1.1",
    "description": "Partners send signed CloudEvents (`POST /events`, CONTRACT.md); viewers and "
    "partners read the savings and the partners their own data. The event API is at /docs/asyncapi.",
}


def build_app(
    names: Sequence[str], settings: Settings, registry: PartnerRegistry, consumer: str | None = None
) -> tuple[App, Bus, list[Service]]:
    names = [n for n in names if n != GATEWAY]  # `serve gateway`: the gateway alone
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ConfigurationError(
            f"unknown service(s): {', '.join(unknown)}; choose from {', '.join([*SERVICES, GATEWAY])}"
        )
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set: point it at Redis, e.g. redis://localhost:6379/0")

    if settings.cluster and not settings.partnership:
        raise ConfigurationError(
            "COMMISSIONING_REDIS_MODE=cluster needs COMMISSIONING_PARTNERSHIP: a partnership's keys "
            "share one hash slot, so its scripts can run on a cluster"
        )
    streams = Streams(settings.key_prefix)
    redis = _connect(settings.redis_url, settings.cluster, health_check_interval=30)
    bus = Bus.from_settings(redis, settings)
    if consumer:
        bus.consumer = consumer
    tolerance = settings.bid_date_tolerance_days
    gateway = Gateway(
        streams,
        registry,
        settings.max_event_bytes,
        None if tolerance < 0 else tolerance,
        **gateway_limits(settings),
        share_decoded=bool(names),  # a gateway alone has no reader in its process to share with
    )
    runs_gateway = settings.gateway or not names  # `serve gateway` runs it whatever the setting
    if runs_gateway:
        bus.add(gateway.subscription())
    credentials = RedisCredentials(redis, streams)
    reads = ReadAuth(credentials, registry, oidc(settings, credentials))
    ctx = Context(settings, streams, redis, bus, registry, reads)
    services = [SERVICES[n](ctx) for n in names]
    for s in services:
        bus.add(*s.subscriptions)

    bus.retention = retention(
        settings,
        bus,
        streams,
        runs_gateway,
        "savings" in names,
        [n for n in names if n in set(OWNERS.values())],
    )

    projection = next((s.extra["state"] for s in services if s.name == "savings"), None)
    metrics = Metrics(
        bus,
        RedisEntries(redis),
        RedisUsage(redis, streams.inbound),
        registry,
        lambda: projection.summary if projection else None,
        rejected=gateway.rejected,
    )
    router = RedisRouter()
    declare(router, streams)

    async def started(app: FastAPI) -> None:
        collector.freeze()
        bus.start_sweepers()
        log.info(
            "serving",
            services=(["gateway"] if runs_gateway else []) + list(names),
            consumer=bus.consumer,
            prefix=settings.key_prefix,
            partners=len(registry),
        )

    async def stopping(app: FastAPI) -> None:
        log.info("stopping: in-flight batches finish, unfinished entries stay pending")
        await bus.stop_sweepers()
        for s in services:
            for hook in s.on_shutdown:
                await hook()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the consumer groups (from 0) and the services' state before any subscriber starts;
        # the stream router then starts the broker, runs `started`, and at the end `stopping`
        # before it stops the broker (in-flight batches finish within the graceful timeout)
        await bus.ensure_groups()
        for s in services:
            for hook in s.on_startup:
                await hook()
        yield
        await redis.aclose()
        log.info("stopped", processed=bus.processed, failures=bus.failures)

    stream = (RedisClusterRouter if settings.cluster else RedisFastAPIRouter)(
        settings.redis_url,
        graceful_timeout=settings.shutdown_timeout_s,
        logger=None,
        middlewares=[metrics.middleware],
        specification=EVENT_API,
        schema_url=None,  # served below, as it was: without the AsyncAPI page's "try it out"
        setup_state=False,
        lifespan=lifespan,
        include_in_schema=False,
    )
    bus.register(_BatchRouter(stream))  # type: ignore[arg-type] - what Bus.register uses of a router
    stream.include_router(router)
    stream.after_startup(started)
    stream.on_broker_shutdown(stopping)

    app = App(stream, **HTTP_API, openapi_url="/docs/openapi.json", docs_url=None, redoc_url=None)
    app.add_exception_handler(Refusal, refused)
    app.include_router(
        core_routes(
            bus,
            redis,
            gateway,
            metrics,
            settings.max_event_bytes,
            settings.ready_max_lag,
            RateLimiter(settings.rate_per_address, settings.burst_per_address),
            settings.memory_warn_ratio,
        )
    )
    app.include_router(metrics.routes())
    app.include_router(reads.routes())
    app.include_router(docs_routes(stream.schema))
    for s in services:
        if s.http is not None:
            app.include_router(s.http)
    return app, bus, services


def retention(
    settings: Settings, bus: Bus, streams: Streams, gateway: bool, savings: bool, owners: Sequence[str] = ()
) -> Retention:
    """What this process trims: only keys it may write under the ACL (services.acl). An owner's
    request stream is trimmed once handled: each request is kept in its owner's state until
    decided, and then published on `P:<type>` or `P:rejected:<partner>`."""
    capped = {streams.dead_letter: settings.dead_letter_maxlen}
    if savings:
        capped[streams.savings_updated] = settings.derived_maxlen
    folder = settings.archive_dir
    # a deployed process's bus reads Redis (`bus.redis`)
    entries, marks = RedisEntries(bus.redis), RedisArchiveMarks(bus.redis, streams)  # type: ignore[arg-type]
    archive = Archive(folder, entries, marks, bus.consumer) if folder else None
    return Retention(
        bus.delivery,
        handled=([streams.inbound] if gateway else []) + [streams.requests(o) for o in owners],
        archived=sorted({streams.accepted(t) for t in PAYLOADS}) if archive else [],
        archive=archive,
        capped=capped,
        groups=sorted({s.group for s in bus.subscriptions}),
        window_s=settings.idempotency_window_s,
        max_ids=settings.idempotency_max_ids,
        interval_s=settings.trim_interval_s,
        state_logs=[
            RedisStateStore(bus.redis, streams, n) for n in [*owners, *(["savings"] if savings else [])]
        ],
        state_log_keep_s=settings.state_log_keep_s,
        decision_logs=[RedisDecisionLog(bus.redis, streams, o) for o in owners],
    )


def oidc(settings: Settings, credentials: Credentials) -> Oidc | None:
    """Sign-in with the council's identity provider, where one is configured."""
    if not settings.oidc_issuer:
        return None
    return Oidc(
        OidcSettings(
            settings.oidc_issuer,
            settings.oidc_client_id,
            settings.oidc_client_secret,
            parse_allowed(settings.oidc_allowed),
            int(settings.oidc_session_hours * 3600),
            settings.oidc_redirect_url,
        ),
        credentials,
    )


def gateway_limits(settings: Settings) -> dict[str, Any]:
    """The gateway's rejection records and rate limits, from the settings."""
    return {
        "rejections": RejectionPolicy(
            settings.rejected_maxlen, settings.rejected_unknown_maxlen, settings.rejected_keep_bytes
        ),
        "stream_limits": RateLimiter(settings.rate_per_partner, settings.burst_per_partner),
        "http_limits": RateLimiter(settings.rate_per_partner, settings.burst_per_partner),
    }


async def serve(
    names: Sequence[str],
    settings: Settings,
    registry: PartnerRegistry | Callable[[str | None], PartnerRegistry],
) -> None:
    """Serve `names` for every partnership of `settings.served`, each on its own HTTP port, until
    SIGTERM or Ctrl-C. `registry`: the partners, or the partners of a given partnership."""
    served = settings.served
    registries = registry if callable(registry) else (lambda _: registry)
    if settings.lease_s > 0:
        await _serve_leased(names, settings, registries)
        return
    servers = [
        _server(names, settings.for_partnership(p, i), registries(p), alone=len(served) == 1)
        for i, p in enumerate(served)
    ]
    if len(servers) == 1:
        # build_app checked that the URL is set
        await check_redis(settings.redis_url, cluster=settings.cluster)  # type: ignore[arg-type]
        await servers[0].serve()
        return
    # every port bound before the partnerships' Redis connections take ephemeral ports from
    # the same range (hundreds of them, with many partnerships)
    sockets = [s.config.bind_socket() for s in servers]
    await check_redis(settings.redis_url, cluster=settings.cluster)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()

    def stop(sig: int) -> None:
        for s in servers:
            s.handle_exit(sig, None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in zip(servers, sockets, strict=True)))


async def _serve_leased(
    names: Sequence[str], settings: Settings, registries: Callable[[str | None], PartnerRegistry]
) -> None:
    """Serve the partnerships of the pool whose lease this process holds (services.leases)."""
    from services.leases import Leases

    if not settings.partnerships:
        raise ConfigurationError(
            "COMMISSIONING_LEASE_S needs the pool of partnerships in COMMISSIONING_PARTNERSHIPS"
        )
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set: point it at Redis, e.g. redis://localhost:6379/0")
    pool = settings.served
    for p in pool:  # every partnership's configuration checked before any lease is taken
        registries(p)
    await check_redis(settings.redis_url, cluster=settings.cluster)
    redis = _connect(settings.redis_url, settings.cluster, health_check_interval=30)
    leases = Leases(
        RedisLeaseBoard(redis, settings.prefix),
        settings,
        consumer_name(),
        lambda p: _server(names, settings.for_partnership(p, pool.index(p)), registries(p), alone=False),
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        leases.stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await leases.run()
    finally:
        await redis.aclose()


def _server(
    names: Sequence[str], settings: Settings, registry: PartnerRegistry, alone: bool
) -> uvicorn.Server:
    app, _, _ = build_app(names, settings, registry)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )
    return _Server(config) if alone else _Shared(config)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process would
    end "killed by signal". A clean stop here exits 0."""

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


class _Shared(_Server):
    """One of several servers in a process (one per partnership): the process's one signal
    handler stops them all, so none of them installs its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
