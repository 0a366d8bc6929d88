"""The savings projection's snapshots through the StateStore port, on the in-memory adapter:
a process starting from a snapshot and the log's tail has the figures of one that read every
event, and reads the set whole only when the snapshot cannot serve."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import zstandard

from services.savings import snapshot
from services.savings.projection import Projection
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.bus import Entry
from shared.bus.consumer import Applied, parse_trusted
from shared.policy import SavingsPolicy
from shared.ports import Ports, Snapshot
from shared.streams import Streams
from tests.eventgen import history
from tests.support import event

NAMES = Streams("mem")
POLICY = SavingsPolicy()
PARTNERS = ["a-cc", "b-dc", "c-pct", "d-police", "e-fire"]


def events(seed: int) -> list[dict[str, Any]]:
    return [
        event(data, type=t, partner=pid, id=f"ev-{seed}-{n}")
        for n, (pid, t, data) in enumerate(history(seed, PARTNERS, contracts=6))
    ]


async def consume(projection: Projection, evs: list[dict[str, Any]], first: int = 0) -> None:
    """What the bus does with each entry of the canonical streams, then wait for the figures."""
    for n, ev in enumerate(evs, start=first):
        fields = {b"event": json.dumps(ev).encode()}
        entry = Entry(NAMES.accepted(ev["type"]), f"{n}-0", fields)
        await projection.ports.state.apply(await projection.handle(parse_trusted(entry), entry))  # type: ignore[attr-defined]
        await projection.after_batch([Applied(entry, True)])
    for _ in range(300):
        await asyncio.sleep(0.01)
        busy = (projection._pending, projection._snapshotting)  # a snapshot is saved in the background
        if all(task is None or task.done() for task in busy):
            return
    raise AssertionError("figures not recomputed")


async def stored_elsewhere(ports: Ports, evs: list[dict[str, Any]]) -> None:
    """Another replica stores events (this process sees them only in the log)."""
    for ev in evs:
        raw = json.dumps(ev).encode()
        await ports.state.apply(ports.state.store(f"{ev['source']} {ev['id']}", raw))  # type: ignore[attr-defined]


def counted_scans(ports: Ports) -> list[int]:
    calls: list[int] = []
    scan = ports.state.scan

    def counting() -> Any:
        calls.append(1)
        return scan()

    ports.state.scan = counting  # type: ignore[method-assign]
    return calls


async def whole(ports: Ports) -> dict[str, Any]:
    reference = Projection(None, NAMES, POLICY, ports, snapshot_every_s=0)  # type: ignore[arg-type]
    await reference.load()
    return reference.figures


def test_a_restart_reads_the_snapshot_and_the_logs_tail_with_the_figures_of_a_full_read() -> None:
    async def scenario() -> None:
        ports = memory_ports(MemoryStreams(NAMES))
        first = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await first.load()
        evs = events(11) + events(12)
        await consume(first, evs[:40])
        saved = await ports.state.snapshot()
        assert saved is not None, "the first recompute after a full read saves one"
        await consume(first, evs[40:50])
        assert await ports.state.snapshot() == saved, "not again before the interval"
        await stored_elsewhere(ports, evs[50:])

        scans = counted_scans(ports)
        restarted = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        assert await restarted.load() == len(evs)
        assert scans == [], "started from the snapshot, not the whole set"
        expected = await whole(ports)
        assert restarted.figures == expected and expected["events_applied"] == len(evs)

        await restarted.stop()
        assert (await ports.state.snapshot()).position == await ports.state.position(), "saved on stop"

    asyncio.run(scenario())


def test_the_set_is_read_whole_when_the_log_was_trimmed_past_the_snapshot_or_a_rebuild_replaced_it() -> None:
    async def scenario() -> None:
        ports = memory_ports(MemoryStreams(NAMES))
        first = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await first.load()
        evs = events(21)
        await consume(first, evs[:20])
        assert await ports.state.snapshot() is not None
        await stored_elsewhere(ports, evs[20:])
        await ports.state.trim(await ports.state.position())  # the tail after the snapshot is gone

        scans = counted_scans(ports)
        restarted = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await restarted.load()
        assert scans == [1], "behind the log's retention: read whole"
        assert restarted.figures == await whole(ports)

        ports.state.current = b"2"  # type: ignore[attr-defined] - a rebuild swapped the set in
        scans.clear()
        again = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await again.load()
        assert scans == [1], "a snapshot of another generation is not used"

        await again.stop()  # saved for generation 2
        assert (await ports.state.snapshot()).generation == b"2"
        position = await ports.state.position()
        await ports.state.save_snapshot(Snapshot(b"\x28\xb5\x2f\xfd damaged", position, b"2"))
        scans.clear()
        last = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await last.load()
        assert scans == [1], "a snapshot that cannot be read is not used"
        assert last.figures == again.figures == await whole(ports)

        await last.stop()  # an upgrade: the snapshot saved is of the format before this one's
        saved = await ports.state.snapshot()
        frames = snapshot.unpack(saved.blob)
        head = snapshot.decompress(frames[0])
        before = head.replace(
            f'"format":{snapshot.FORMAT}'.encode(), f'"format":{snapshot.FORMAT - 1}'.encode()
        )
        older = snapshot.pack([zstandard.ZstdCompressor().compress(before), *frames[1:]])
        await ports.state.save_snapshot(Snapshot(older, saved.position, saved.generation))
        scans.clear()
        upgraded = Projection(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await upgraded.load()
        assert scans == [1], "a snapshot of the format before is not used: the set is read whole"
        assert upgraded.figures == await whole(ports)
        await upgraded.stop()
        header = snapshot.decompress(snapshot.unpack((await ports.state.snapshot()).blob)[0])
        assert json.loads(header[len(snapshot.MAGIC) :])["format"] == snapshot.FORMAT, (
            "then saved in this one"
        )

    asyncio.run(scenario())


def test_reloaded_from_a_snapshot_older_than_what_it_folded_itself_it_folds_the_tail_again() -> None:
    """After an outage a process reads its state again; from a snapshot taken before events it
    had folded itself, those events are folded again from the log (found by a failover test)."""

    async def scenario() -> None:
        ports = memory_ports(MemoryStreams(NAMES))
        projection = Projection(None, NAMES, POLICY, ports, snapshot_every_s=3600)  # type: ignore[arg-type]
        await projection.load()
        evs = events(31)
        await consume(projection, evs[:20])
        assert (await ports.state.snapshot()) is not None
        for n, ev in enumerate(evs[20:], start=20):  # folded by this process, no follow since
            entry = Entry(NAMES.accepted(ev["type"]), f"{n}-0", {b"event": json.dumps(ev).encode()})
            await ports.state.apply(await projection.handle(parse_trusted(entry), entry))  # type: ignore[attr-defined]
            await projection.after_batch([Applied(entry, True)])
        async with projection._lock:
            await projection._load()  # what `_refresh` does after an outage
        figures = {**projection.running.figures(projection.index), "events_applied": projection.size}
        assert figures == await whole(ports)
        await projection.stop()

    asyncio.run(scenario())


def test_the_figures_move_on_while_a_snapshot_is_being_encoded() -> None:
    """A snapshot is copied under the state's lock, then encoded in a worker thread (seconds at
    tens of thousands of contracts): batches are folded and the figures recomputed meanwhile."""
    release = threading.Event()

    class SlowToEncode(Projection):
        def capture_snapshot(self) -> Any:
            encode = super().capture_snapshot()
            if encode is None:
                return None

            def slowly() -> bytes:
                release.wait(10)
                return encode()

            return slowly

    async def scenario() -> None:
        ports = memory_ports(MemoryStreams(NAMES))
        projection = SlowToEncode(None, NAMES, POLICY, ports)  # type: ignore[arg-type]
        await projection.load()
        evs = events(31)
        for n, ev in enumerate(evs[:30]):
            fields = {b"event": json.dumps(ev).encode()}
            entry = Entry(NAMES.accepted(ev["type"]), f"{n}-0", fields)
            await ports.state.apply(await projection.handle(parse_trusted(entry), entry))  # type: ignore[attr-defined]
            await projection.after_batch([Applied(entry, True)])
        for _ in range(300):  # the first recompute starts a snapshot, which waits
            await asyncio.sleep(0.01)
            if projection._snapshotting is not None:
                break
        assert projection._snapshotting is not None and not projection._snapshotting.done()
        for n, ev in enumerate(evs[30:], start=30):
            fields = {b"event": json.dumps(ev).encode()}
            entry = Entry(NAMES.accepted(ev["type"]), f"{n}-0", fields)
            await ports.state.apply(await projection.handle(parse_trusted(entry), entry))  # type: ignore[attr-defined]
            await projection.after_batch([Applied(entry, True)])
        for _ in range(300):
            await asyncio.sleep(0.01)
            if projection.figures["events_applied"] == len(evs):
                break
        assert projection.figures["events_applied"] == len(evs), "the figures waited for the snapshot"
        assert not projection._snapshotting.done() and await ports.state.snapshot() is None
        release.set()
        await asyncio.wait_for(projection._snapshotting, 10)
        saved = await ports.state.snapshot()
        assert saved is not None and saved.position == "30-0", "as it was when copied"
        await projection.stop()
        assert (await ports.state.snapshot()).position == await ports.state.position(), "saved on stop"

    asyncio.run(scenario())
