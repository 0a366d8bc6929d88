"""Bootstrap: wires settings, Redis, the bus, the gateway and the chosen services into one
FastStream ASGI application, served by uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
import uvicorn
from faststream.asgi import AsgiFastStream
from faststream.redis import RedisBroker, RedisClusterBroker, RedisRouter
from faststream.specification import AsyncAPI
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from services.contracts.app import build as build_contracts
from services.docs import declare
from services.gateway.rejections import RejectionPolicy
from services.gateway.service import Gateway
from services.http import PathParams, core_routes
from services.metrics import Metrics
from services.needs.app import build as build_needs
from services.oidc import Oidc, OidcSettings, parse_allowed
from services.procurement.app import build as build_procurement
from services.readauth import ReadGuard
from services.savings.app import build as build_savings
from services.service import Context, Service
from shared import collector
from shared.adapters.redis import RedisStateStore
from shared.archive import Archive
from shared.authority import OWNERS
from shared.bus import Bus, Retention, consumer_name
from shared.events import PAYLOADS
from shared.partners import PartnerRegistry
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


def build_app(
    names: Sequence[str], settings: Settings, registry: PartnerRegistry, consumer: str | None = None
) -> tuple[AsgiFastStream, Bus, list[Service]]:
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
    )
    runs_gateway = settings.gateway or not names  # `serve gateway` runs it whatever the setting
    if runs_gateway:
        bus.add(gateway.subscription())
    ctx = Context(settings, streams, redis, bus, registry)
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
        bus, redis, registry, lambda: projection.figures if projection else None, rejected=gateway.rejected
    )
    broker = (RedisClusterBroker if settings.cluster else RedisBroker)(
        settings.redis_url,
        graceful_timeout=settings.shutdown_timeout_s,
        logger=None,
        middlewares=[metrics.middleware],
    )
    router = RedisRouter()
    bus.register(router)
    declare(router, streams)
    broker.include_router(router)

    routes = core_routes(
        bus,
        redis,
        gateway,
        metrics,
        settings.max_event_bytes,
        settings.ready_max_lag,
        RateLimiter(settings.rate_per_address, settings.burst_per_address),
        settings.memory_warn_ratio,
    )
    routes.append(metrics.route())
    for s in services:
        routes.extend(s.routes)

    async def started() -> None:
        collector.freeze()
        bus.start_sweepers()
        log.info(
            "serving",
            services=(["gateway"] if runs_gateway else []) + list(names),
            consumer=bus.consumer,
            prefix=settings.key_prefix,
            partners=len(registry),
        )

    async def stopping() -> None:
        log.info("stopping: in-flight batches finish, unfinished entries stay pending")
        await bus.stop_sweepers()
        for s in services:
            for hook in s.on_shutdown:
                await hook()

    async def closed() -> None:
        await redis.aclose()
        log.info("stopped", processed=bus.processed, failures=bus.failures)

    app = AsgiFastStream(
        broker,
        specification=AsyncAPI(
            title="Shared commissioning event API",
            version="1",
            description="Redis Streams; every entry carries one CloudEvent (JSON) in the field `event`. See CONTRACT.md.",
        ),
        asgi_routes=routes,
        logger=None,
        on_startup=[bus.ensure_groups, *[h for s in services for h in s.on_startup]],
        after_startup=[started],
        on_shutdown=[stopping],
        after_shutdown=[closed],
        asyncapi_path="/docs/asyncapi",
    )
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
    archive = Archive(folder, bus.redis, streams, bus.consumer) if folder else None
    return Retention(
        bus.redis,
        handled=([streams.inbound] if gateway else []) + [streams.requests(o) for o in owners],
        archived=sorted({streams.accepted(t) for t in PAYLOADS}) if archive else [],
        archive=archive,
        capped=capped,
        once_keys=sorted({streams.seen(s.group) for s in bus.subscriptions}),
        window_s=settings.idempotency_window_s,
        max_ids=settings.idempotency_max_ids,
        interval_s=settings.trim_interval_s,
        state_logs=[RedisStateStore(bus.redis, streams, n) for n in [*owners, *(["savings"] if savings else [])]],
        state_log_keep_s=settings.state_log_keep_s,
    )


def oidc(settings: Settings, redis: Redis, streams: Streams) -> Oidc | None:
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
        redis,
        streams,
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
        await check_redis(settings.redis_url, cluster=settings.cluster)  # type: ignore[arg-type] - build_app checked it is set
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
        redis,
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
    app, bus, services = build_app(names, settings, registry)
    projection = next((s.extra["state"] for s in services if s.name == "savings"), None)
    guarded = ReadGuard(
        PathParams(app, app.routes),
        bus.redis,
        bus.streams,
        registry,
        settings.public_totals,
        lambda: projection.figures if projection else None,
        oidc(settings, bus.redis, bus.streams),
    )
    config = uvicorn.Config(
        guarded,
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
