"""`commissioning demo`: the reference partnership (seed 000) end to end on a private Redis.

Every partner's needs, the programme's investments and the three shared contracts are sent
as signed events to `P:inbound`; the gateway verifies them, their owners (the needs and
procurement services) accept them, and the savings service folds the accepted ones into the
projection, which is then printed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, TextIO

from shared.redis_client import connect

from services.runtime import build_app
from services.savings.projection import Projection
from shared import eventloop
from shared.money import gbp
from shared.partners import Partner, PartnerRegistry
from shared.progress import Progress
from shared.settings import Settings
from shared.tscip import PARTNERS, reference_payloads

CASES = {
    "fifteen": "All fifteen partners, 100 arrangements, three shared contracts (advocacy funded by five)",
    "five": "The county, the city and the three PCTs: 74 arrangements, three shared contracts",
}


def demo_registry() -> PartnerRegistry:
    return PartnerRegistry(
        [Partner(id=pid, name=name, kind=kind, secret=secrets.token_hex(16)) for pid, name, kind in PARTNERS]
    )


def signed_entries(case: str, registry: PartnerRegistry, run: str) -> list[dict[str, bytes]]:
    entries = []
    for n, (pid, etype, data) in enumerate(reference_payloads(case)):
        body = json.dumps(
            {
                "specversion": "1.0",
                "id": f"{run}-{n}",
                "source": f"/partners/{pid}",
                "type": etype,
                "time": "2011-09-08T10:00:00+01:00",
                "datacontenttype": "application/json",
                "data": data,
            }
        ).encode()
        partner = registry.get(pid)
        assert partner is not None
        entries.append({"event": body, "signature": partner.sign(body).encode()})
    return entries


async def run_case(case: str, settings: Settings, out: TextIO) -> dict[str, Any]:
    registry = demo_registry()
    prefix = f"{settings.prefix}-demo-{case}-{uuid.uuid4().hex[:6]}"
    settings = settings.model_copy(update={"prefix": prefix, "block_ms": 100})
    app, _, services = build_app(["needs", "procurement", "contracts", "savings"], settings, registry)
    projection: Projection = next(s for s in services if s.name == "savings").extra["state"]
    entries = signed_entries(case, registry, f"demo-{case}")
    redis = connect(settings.redis_url)  # type: ignore[arg-type]
    lifespan = app.start_lifespan_context()
    await lifespan.__aenter__()
    try:
        pipe = redis.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(f"{prefix}:inbound", e)
        await pipe.execute()
        progress = Progress(len(entries), f"{case}: events into the projection", out)
        for _ in range(1200):
            applied = projection.figures["events_applied"]
            progress.update(applied)
            if applied >= len(entries):
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(
                f"only {projection.figures['events_applied']} of {len(entries)} events applied in 60s"
            )
        progress.finish()
        rejected = [k async for k in redis.scan_iter(match=f"{prefix}:rejected:*")]
        if rejected:
            raise RuntimeError(f"the demo's own events were rejected: see {rejected}")
        figures = projection.figures
    finally:
        try:
            # the figures are in hand: a slow stop must not hold the demo up
            async with asyncio.timeout(15):
                await lifespan.__aexit__(None, None, None)
        except TimeoutError:
            out.write(f"{case}: the services took over 15s to stop; carrying on\n")
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return figures


def report(case: str, f: dict[str, Any], out: TextIO) -> None:
    p, d = f["portfolio"], f["discounted"]
    w = out.write
    w(f"\n{CASES[case]}\n")
    w(
        f"  as of {f['as_of']}; horizon {f['horizon']['from']} to {f['horizon']['to']} "
        f"({f['horizon']['months']} months)\n"
    )
    w(f"  baseline staff cost a year   {gbp(p['baseline_annual_cost']):>12}\n")
    w(f"  shared contracts' cost a year{gbp(p['shared_annual_cost']):>12}\n")
    w(f"  annual saving                {gbp(p['annual_saving']):>12}\n")
    w(f"  investment (illustrative)    {gbp(p['investment']):>12}\n")
    w(f"  projected over the horizon   {gbp(p['projected_saving']):>12}\n")
    w(f"  ROI                          {float(p['roi']):>12.0%}   payback {p['payback_date']}\n")
    w(
        f"  NPV at {float(d['rate']):.1%}                {gbp(d['npv']):>12}   "
        f"discounted ROI {float(d['roi']):.0%}, payback {d['payback_date']}\n"
    )
    w("  contracts:\n")
    for c in f["contracts"]:
        w(
            f"    {c['contract_id']:<28} {c['partners']:>2} partners  "
            f"cost {gbp(c['shared_annual_cost']):>8}  saving {gbp(c['annual_saving']):>9} a year\n"
        )
    w("  year by year:\n")
    for y in f["years"]:
        w(
            f"    year {y['year']}  {y['from']} to {y['to']}  {gbp(y['saving']):>10}  "
            f"(discounted {gbp(y['discounted_saving'])}, cumulative {gbp(y['cumulative_saving'])})\n"
        )


async def demo(settings: Settings, out: TextIO) -> dict[str, dict[str, Any]]:
    results = {}
    for case in CASES:
        results[case] = await run_case(case, settings, out)
        report(case, results[case], out)
    out.write(
        "\nThe report's figures: annual saving £317,648 (fifteen partners) and £265,498 (five); "
        "ROI 58% and 55% over 5.5 years.\nThe programme's investment is not published: the "
        "demo's is chosen to give those ROIs. Rules: docs/savings.md.\n"
    )
    return results


def main(settings: Settings, out: TextIO = sys.stdout) -> int:
    from shared.redis_server import RedisServer

    server = None
    if not settings.redis_url:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="commissioning-demo-"))).start()
        settings = settings.model_copy(update={"redis_url": server.url})
        out.write(f"Private Redis for the demo at {server.url} (data in {server.data_dir})\n")
    try:
        eventloop.run(demo(settings, out))
    finally:
        if server is not None:
            server.stop()
    return 0
