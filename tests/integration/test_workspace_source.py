"""The workspace's reader on a real Redis (the `Entries` port's Redis adapter): every accepted
stream read in chunks, the refusals in pages, newest first and capped a partner."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from services.savings.workspace import source
from services.savings.workspace.model import trail
from shared.adapters.redis import RedisEntries
from shared.streams import Streams
from tests.support import event

pytestmark = pytest.mark.integration


def test_reads_accepted_streams_in_chunks_and_the_newest_refusals_only(
        r: redis.Redis, prefix: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "CHUNK", 7)  # several chunks from a short stream
    monkeypatch.setattr(source, "REFUSALS_READ", 250)
    for n in range(20):
        ev = event({"investment_id": f"i{n}", "partner_id": "staffordshire-cc", "date": "2013-01-01",
                    "amount": "10.00"}, type="investment.recorded", id=f"inv-{n}")
        r.xadd(f"{prefix}:investment.recorded", {"event": json.dumps(ev)})
    for n in range(300):
        ev = event({"contract_id": f"c{n}"}, type="contract.decommissioned", partner="stoke-pct", id=f"x-{n}")
        r.xadd(f"{prefix}:rejected:stoke-pct", {"event": json.dumps(ev), "reason": json.dumps(
            {"code": "not_the_lead", "message": "only the lead", "errors": []}), "inbound_id": "1-0"})

    async def load():  # type: ignore[no-untyped-def]
        client = AsyncRedis.from_url(redis_url)
        try:
            return await source.load(RedisEntries(client), Streams(prefix), ["stoke-pct", "staffordshire-cc"])
        finally:
            await client.aclose()

    ws = asyncio.run(load())
    assert len(ws.facts.investments) == 20
    refused = [e for e in trail(ws, limit=10_000) if e.refused]
    assert len(refused) == 250  # the newest 250 of 300, read a hundred at a time
    assert {e.subject for e in refused} == {f"c{n}" for n in range(50, 300)}
