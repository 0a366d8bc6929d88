"""A rebuild encodes what its snapshot holds of the facts alone in a fork while it computes the
figures (`rebuild._facts_part`, `snapshot.FactsPart`), and takes it unless something was folded
since or the fork failed: the snapshot then restores to the figures of a full replay either way."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from services.savings import rebuild, snapshot
from services.savings.model import Facts, evolve, project
from services.savings.running import Running
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from shared.streams import Streams
from tests.eventgen import history
from tests.support import event

pytestmark = pytest.mark.integration

PARTNERS = ["a-cc", "b-dc", "c-pct", "d-police", "e-fire"]


def events(seeds: range) -> list[dict[str, Any]]:
    return [
        event(data, type=t, partner=pid, id=f"ev-{seed}-{n}")
        for seed in seeds
        for n, (pid, t, data) in enumerate(history(seed, PARTNERS, contracts=6))
    ]


def add(r: redis.Redis, streams: Streams, evs: list[dict[str, Any]]) -> None:
    for ev in evs:
        r.xadd(streams.accepted(ev["type"]), {"event": json.dumps(ev)})


def replayed(evs: list[dict[str, Any]]) -> dict[str, Any]:
    facts = Facts()
    for ev in evs:
        evolve(facts, f"{ev['source']} {ev['id']}", PAYLOADS[ev["type"]].model_validate(ev["data"]))
    return project(facts, SavingsPolicy())


def restored(r: redis.Redis, streams: Streams) -> dict[str, Any]:
    """The figures of the snapshot the rebuild saved, restored."""
    blob = r.hget(streams.state("savings", "snapshot"), "blob")
    assert blob, "the rebuild saved a snapshot"
    running = Running(SavingsPolicy())
    return running.figures(snapshot.restore(blob, running, SavingsPolicy()))


@pytest.mark.parametrize("case", ["taken", "folded since", "fork failed"])
def test_the_facts_encoded_apart_are_taken_unless_something_was_folded_since_or_the_fork_failed(
    r: redis.Redis,
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    case: str,
) -> None:
    monkeypatch.setattr(rebuild, "APART_FROM", 0)
    streams = Streams(prefix)
    evs, late = events(range(4)), events(range(100, 101))
    add(r, streams, evs)
    encoded_here: list[int] = []
    original = snapshot.facts_part

    def counting(*args: Any, **kwargs: Any) -> Any:  # counted in this process only (a fork's own)
        encoded_here.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(snapshot, "facts_part", counting)
    if case == "folded since":  # an event arrives once the fork has started: the catch-up folds it
        forked = rebuild._Forked.__init__

        def then_one_arrives(self: Any, work: Any) -> None:
            forked(self, work)
            add(r, streams, late)

        monkeypatch.setattr(rebuild._Forked, "__init__", then_one_arrives)
    if case == "fork failed":

        def failing(self: Any) -> bytes:
            raise RuntimeError("the fork fails")

        monkeypatch.setattr(snapshot.FactsPart, "to_bytes", failing)

    async def run() -> dict[str, Any]:
        client = Redis.from_url(redis_url)
        try:
            return await rebuild.rebuild(client, streams, io.StringIO(), workers=2)
        finally:
            await client.aclose()

    done = asyncio.run(run())
    expected = [*evs, *late] if case == "folded since" else evs
    assert done["caught_up"] == (len(late) if case == "folded since" else 0)
    assert encoded_here == ([] if case == "taken" else [1]), "encoded again here only when it had to be"
    if case == "fork failed":
        assert "RuntimeError: the fork fails" in capfd.readouterr().err, "the fork says why"
    figures = restored(r, streams)
    assert {k: v for k, v in figures.items() if k != "events_applied"} == {
        k: v for k, v in replayed(expected).items() if k != "events_applied"
    }
