"""Prometheus metrics for every process: FastStream's Redis middleware, plus the bus's own
state (lag, pending, dead letters, rejections per partner), the store's memory and the
portfolio savings, read at scrape time through the ports (shared.ports: `Delivery.groups_on`,
`Entries.length`, `Usage.memory`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import Response
from faststream.redis.prometheus import RedisPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from shared.bus import Bus
from shared.inbound import UNKNOWN
from shared.partners import PartnerRegistry
from shared.ports import Entries, Usage

log = structlog.get_logger("metrics")

SAVINGS_FIGURES = (
    "baseline_annual_cost",
    "shared_annual_cost",
    "annual_saving",
    "contract_price_annual_saving",
    "investment",
    "projected_saving",
    "realised_saving",
)


class Metrics:
    def __init__(
        self,
        bus: Bus,
        entries: Entries,
        usage: Usage,
        partners: PartnerRegistry,
        figures: Callable[[], dict[str, Any] | None] = lambda: None,
        rejected: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.bus, self.entries, self.usage = bus, entries, usage
        self.partners, self.figures = partners, figures
        self.rejected_here = rejected if rejected is not None else {}
        self.registry = CollectorRegistry()
        self.middleware = RedisPrometheusMiddleware(registry=self.registry, app_name="commissioning")
        r = self.registry
        self.lag = Gauge(
            "commissioning_consumer_lag",
            "Entries in the stream not yet delivered to the group",
            ["group", "stream"],
            registry=r,
        )
        self.pending = Gauge(
            "commissioning_pending_entries",
            "Entries delivered to the group but not yet acknowledged",
            ["group", "stream"],
            registry=r,
        )
        self.dead = Gauge("commissioning_dead_letters", "Entries in the dead-letter stream", registry=r)
        self.rejected = Gauge(
            "commissioning_rejections", "Entries in P:rejected:<partner>", ["partner"], registry=r
        )
        self.processed = Gauge(
            "commissioning_entries_processed",
            "Entries this process applied or dead-lettered since it started",
            registry=r,
        )
        self.failures = Gauge(
            "commissioning_entry_failures",
            "Entry failures in this process since it started (left pending for retry)",
            registry=r,
        )
        self.savings = Gauge(
            "commissioning_savings_pounds", "Portfolio savings figures, in pounds", ["figure"], registry=r
        )
        self.roi = Gauge("commissioning_savings_roi", "Portfolio ROI over the horizon (ratio)", registry=r)
        self.rejected_total = Gauge(
            "commissioning_rejections_recorded",
            "Rejections this process recorded since it started, by partner (or unknown) and code",
            ["partner", "code"],
            registry=r,
        )
        self.memory_used = Gauge("commissioning_redis_memory_used_bytes", "Redis used_memory", registry=r)
        self.memory_max = Gauge(
            "commissioning_redis_memory_max_bytes", "Redis maxmemory (0: no limit)", registry=r
        )
        self.up = Gauge("commissioning_redis_up", "1 when Redis answered the last scrape", registry=r)

    async def lags(self) -> dict[tuple[str, str], int | None]:
        out: dict[tuple[str, str], int | None] = {}
        for sub in self.bus.subscriptions:
            for g in await self.bus.delivery.groups_on(sub.stream):
                if g.name == sub.group:
                    self.pending.labels(sub.group, sub.stream).set(g.pending)
                    out[(sub.group, sub.stream)] = g.lag
        return out

    async def memory(self) -> tuple[int, int]:
        """The store's used memory and its limit (0: none), also set on the gauges."""
        used, limit = await self.usage.memory()
        self.memory_used.set(used)
        self.memory_max.set(limit)
        return used, limit

    async def refresh(self) -> None:
        try:
            await self.memory()
            for (group, stream), lag in (await self.lags()).items():
                if lag is not None:
                    self.lag.labels(group, stream).set(lag)
            streams = self.bus.streams
            self.dead.set(await self.entries.length(streams.dead_letter))
            for pid in [p.id for p in self.partners] + [UNKNOWN]:
                self.rejected.labels(pid).set(await self.entries.length(streams.rejected(pid)))
            self.up.set(1)
        except Exception as e:  # noqa: BLE001 - the store did not answer this scrape (Redis away)
            log.warning("metrics: the store did not answer", error=repr(e))
            self.up.set(0)
        for (partner, code), n in list(self.rejected_here.items()):
            self.rejected_total.labels(partner, code).set(n)
        self.processed.set(self.bus.processed)
        self.failures.set(self.bus.failures)
        figures = self.figures()
        if figures:
            p = figures["portfolio"]
            for name in SAVINGS_FIGURES:
                self.savings.labels(name).set(float(p[name]))
            if p["roi"] is not None:
                self.roi.set(float(p["roi"]))

    def routes(self) -> APIRouter:
        router = APIRouter()

        @router.get(
            "/metrics",
            tags=["operations"],
            summary="Prometheus metrics",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        )
        async def metrics() -> Response:
            await self.refresh()
            return Response(generate_latest(self.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST})

        return router
