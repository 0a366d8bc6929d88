"""`commissioning savings rebuild`: replay the streams into a fresh projection.

1. Read every accepted event of the types it uses from the archive (COMMISSIONING_ARCHIVE_DIR:
   what was trimmed from Redis, shared.archive) and then from its stream (the `Entries` port,
   in chunks, from where the archive ends) into a new set beside the live one (the `Rebuilt`
   port), showing progress, folding each into a fresh index as it goes; events the model
   cannot use are counted and left out, as the service would have dead-lettered them.
2. Put the new set in place, with its once-keys, and move the generation on, in one step
   (`Rebuilt.put_in_place`; on Redis one script renaming both keys), so running savings
   processes reload.
3. Catch up: events appended while step 1 ran are applied through the same once-only step the
   service uses (`Bus.apply_now`), so nothing that arrived meanwhile is lost or counted twice;
   the index takes them from the state's log. Its figures are computed and saved as the new
   generation's snapshot, which the running processes then reload from (the set is not read
   back).

The rebuild speaks ports alone (shared.ports): on Redis (`redis_ports`, the bus's
`RedisDelivery`) as `commissioning savings rebuild` runs it, or on the in-memory adapters.

Each contract's figures depend on the facts alone (`model._figures`), so before step 2 they
are computed in `workers` processes, each a fork of this one holding the index as it stands,
each taking every n-th contract and handing back their figures as a snapshot holds them; the
recompute in step 3 takes them where the catch-up changed nothing they depend on. Then, while
this process recomputes, another fork encodes what the snapshot holds of the facts alone
(`snapshot.FactsPart`: the needs' columns, every payload), taken unless something was folded
since (the catch-up) or the fork failed (then this process encodes it: the same bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TextIO

from pydantic import ValidationError
from pydantic_core import from_json, to_json
from redis.asyncio import Redis

from services.savings import snapshot
from services.savings.model import ContractFigures, Facts
from services.savings.projection import GROUP, SNAPSHOT_EVERY_S, TYPES, Projection
from services.savings.running import Running
from shared import collector
from shared.adapters.redis import redis_ports
from shared.archive import Archive
from shared.bus import Bus, Effect
from shared.decode import Decoded, decode_once
from shared.ports import Delivery, Ports, Rebuilt
from shared.progress import Progress
from shared.settings import savings_policy
from shared.streams import Streams

CHUNK = 2000
#: fewer contracts than this are computed in this process alone (a fork costs more)
APART_FROM = 2000


#: the cgroup v2 CPU limit of the process (a container's `--cpus`), when there is one
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def default_workers(cpu_max: Path = CPU_MAX) -> int:
    """The processes a rebuild computes figures in: one a core it may use, at most 4. The cores
    it may run on (its affinity), fewer under a CPU quota (a container's `--cpus 1.5`: 1), so a
    rebuild in a container limited to one core does not fork workers that only take turns."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity alone
    return max(1, min(cores, 4))


def _parse(raw: bytes | None) -> Decoded | None:
    """The event, typed (shared.decode), or None for an entry that is not one of the contract's."""
    if raw is None:
        return None
    try:
        return decode_once(raw)
    except ValidationError:
        return None


class _Writes:
    """The rebuilt set written a chunk at a time (`Rebuilt.add`: on Redis one HSET and one ZADD
    a chunk), in flight while the next chunk is read and folded (Redis works on another core
    meanwhile)."""

    def __init__(self, rebuilt: Rebuilt, now_ms: int) -> None:
        self.rebuilt, self.now_ms = rebuilt, now_ms
        self._flight: asyncio.Task[None] | None = None

    async def add(self, written: dict[str, bytes]) -> None:
        """Write `written` (key -> the event's bytes; the caller no longer changes it), once
        the chunk before it is written."""
        await self.drain()
        if written:
            self._flight = asyncio.create_task(self.rebuilt.add(written, self.now_ms))

    async def drain(self) -> None:
        """Wait for what is in flight (its failure raised here)."""
        flight, self._flight = self._flight, None
        if flight is not None:
            await flight

    def cancel(self) -> None:
        """Give up what is in flight (the rebuild failed: its keys are written again next time)."""
        if self._flight is not None:
            self._flight.cancel()


class Apart(NamedTuple):
    """What `figures_apart` hands over: each contract's figures, each share's totals
    (`Running.ahead` takes both), and each contract's pieces as the snapshot writes them, with
    the figures they are of (`snapshot.Captured.pieces`)."""

    figures: dict[str, ContractFigures]
    totals: list[list[Any]]
    pieces: dict[str, tuple[ContractFigures, bytes, bytes, bytes]]


def figures_apart(running: Running, facts: Facts, workers: int, out: TextIO = sys.stderr) -> Apart:
    """Every contract's figures (`Running.precompute`), computed in `workers` processes:
    forks of this one, each taking every `workers`-th contract and writing their pieces as a
    snapshot writes them (`snapshot.pieces_of`) to a file this process reads once it has
    computed (and encoded) its own share, and last what its share adds to every total
    (`Running.totals_of`). A worker that fails leaves its contracts to the recompute."""
    cids = sorted(facts.awards)
    if workers < 2 or len(cids) < APART_FROM or not hasattr(os, "fork"):
        return Apart({}, [], {})
    progress = Progress(len(cids), "rebuild: contracts' figures computed", out)
    running.frame_of(facts)  # the business date and the horizon: read once, before the forks
    parts = [cids[k::workers] for k in range(workers)]
    children: list[_Forked] = []
    try:
        for part in parts[1:]:
            children.append(_Forked(functools.partial(_figures_of, running, facts, part)))
        ahead: dict[str, ContractFigures] = {}
        pieces: dict[str, tuple[ContractFigures, bytes, bytes, bytes]] = {}
        for n, (cid, c) in enumerate(running.precompute(facts, parts[0]), 1):
            ahead[cid] = c
            pieces[cid] = (c, *snapshot.pieces_of(c))  # here rather than in the snapshot after
            if not n % 1000:
                progress.update(n * workers)  # the workers keep about the same pace
        totals = [running.totals_of(facts, ahead.values())]
        for child in children:
            joined = child.joined()
            if joined is None:
                continue  # a failed worker's: left to the recompute
            *lines, last = joined.readlines()
            for line in lines:
                cid_text, row, data, shown = line.rstrip(b"\n").split(b"\t")
                cid = cid_text.decode()
                c = ahead[cid] = snapshot._figures(facts.awards[cid].payload, from_json(data), from_json(row))
                pieces[cid] = (c, row, data, shown)  # the same bytes as its own encoding gives
            totals.append(from_json(last))
    finally:
        for child in children:
            child.close()  # killed first if still running: this process failed or was interrupted
    progress.finish()
    return Apart(ahead, totals, pieces)


def _figures_of(running: Running, facts: Facts, cids: list[str], written: BinaryIO) -> None:
    """A worker of `figures_apart`: these contracts' pieces, a line each (its id, row,
    figures and row as shown, apart by tabs: neither an id nor JSON holds one), then their
    totals."""
    computed = []
    for cid, c in running.precompute(facts, cids):
        written.write(b"\t".join([cid.encode(), *snapshot.pieces_of(c)]) + b"\n")
        computed.append(c)
    written.write(to_json(running.totals_of(facts, computed)) + b"\n")


class _Forked:
    """A fork of this process running `work` on a temporary file this one reads once it has
    exited (`joined`). It leaves without running anything of the process it was forked from (no
    cleanup, no event loop, no connection), saying why on stderr when `work` fails."""

    def __init__(self, work: Callable[[BinaryIO], None]) -> None:
        self.file = tempfile.TemporaryFile(prefix="commissioning-rebuild-")  # noqa: SIM115 - `close`
        self.pid: int | None = os.fork()
        if self.pid == 0:
            code = 1
            try:
                work(self.file)
                self.file.flush()
                code = 0
            except BaseException:  # noqa: BLE001 - whatever it was, the fork only reports it
                traceback.print_exc()
            finally:
                os._exit(code)

    def joined(self) -> BinaryIO | None:
        """Its file, from the start, once it has exited; None when it failed."""
        assert self.pid is not None
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        self.file.seek(0)
        return self.file

    def close(self) -> None:
        """Its file closed, and the fork killed if it has not been joined."""
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None
        self.file.close()


def _facts_part(facts: Facts, read: dict[str, tuple[Any, bytes]], written: BinaryIO) -> None:
    """A fork's work: what the snapshot holds of the facts alone (`snapshot.FactsPart`)."""
    written.write(snapshot.facts_part(facts, read).to_bytes())


def same_figures(
    before: dict[str, Any], summary: dict[str, Any], document: Callable[[], dict[str, Any]]
) -> bool:
    """Whether the whole document `before` equals the one now: its figures but the tables
    (`summary`) first, then the `document` whole, put together only when those are the same (its
    tables took 7 s at 1,000,000 events, and a rebuild into a fresh projection never needs them)."""
    return {k: before.get(k) for k in summary} == summary and before == document()


async def rebuild(
    redis: Redis | None,
    streams: Streams,
    out: TextIO = sys.stderr,
    archive: Archive | None = None,
    snapshot_every_s: float = SNAPSHOT_EVERY_S,
    workers: int | None = None,
    ports: Ports | None = None,
    delivery: Delivery | None = None,
) -> dict[str, Any]:
    """Rebuild the savings projection on `redis`, or on the adapters given (`ports` for its
    state and the streams, `delivery` for the once-only step of the catch-up)."""
    if ports is None:
        if redis is None:
            raise ValueError("a rebuild needs a Redis client or the ports to rebuild on")
        ports = redis_ports(redis, streams, "savings")
    projection = Projection(redis, streams, savings_policy(), ports, snapshot_every_s=snapshot_every_s)
    projection.pace_snapshots = False  # nothing else runs in this process
    await projection.load()
    before = projection.figures

    log, rebuilt = ports.entries, ports.rebuilt(GROUP)
    await rebuilt.clear()
    now_ms = int(time.time() * 1000)  # the idempotency window of the rebuilt events starts now
    keys = {t: streams.of_type(t) for t in TYPES}
    total = sum([await log.length(k) for k in keys.values()])
    progress = Progress(total, "rebuild: events replayed", out)
    last: dict[str, str] = {}
    done = skipped = archived = 0
    index = projection.new_index()
    fold = projection.fold
    # each event read, with the payload folded from it: the snapshot writes these bytes rather
    # than encode each fact's payload again (`snapshot.Captured.events`)
    read: dict[str, tuple[Any, bytes]] = {}
    writes = _Writes(rebuilt, now_ms)
    reading: asyncio.Task[Any] | None = None
    # no collection while the state is read whole (shared.collector: each would scan again the
    # millions of objects read so far, all of which stay)
    with collector.paused():
        try:
            for stream in keys.values():
                start = "-"  # or the id of the last entry archived
                # the archive first (what was trimmed from Redis), then the stream from where it ends
                written: dict[str, bytes] = {}  # a chunk's events, written in two commands
                for entry_id, raw in archive.read(stream) if archive is not None else ():
                    start = entry_id
                    event = _parse(raw)
                    if event is None:
                        skipped += 1
                        continue
                    key = event.key  # made at this first look (`Decoded.key`)
                    written[key] = raw
                    payload = event.payload()
                    read.setdefault(key, (payload, raw))
                    fold(index, key, payload)
                    archived += 1
                    if len(written) >= CHUNK:
                        await writes.add(written)
                        written = {}
                await writes.add(written)
                # the next chunk is read while this one is folded
                reading = asyncio.create_task(log.events(stream, start, CHUNK))
                while chunk := await reading:
                    last[stream] = chunk[-1][0]
                    reading = asyncio.create_task(log.events(stream, last[stream], CHUNK))
                    written = {}
                    for _, raw in chunk:
                        event = _parse(raw)
                        if raw is None or event is None:
                            skipped += 1
                            continue
                        key = event.key  # made at this first look (`Decoded.key`)
                        written[key] = raw
                        payload = event.payload()
                        read.setdefault(key, (payload, raw))
                        fold(index, key, payload)
                    await writes.add(written)
                    done += len(chunk)
                    progress.update(done)
            await writes.drain()
        finally:
            writes.cancel()
            if reading is not None:
                reading.cancel()
    elapsed = progress.finish()
    with collector.paused():
        workers = default_workers() if workers is None else workers
        apart = figures_apart(projection.running, index, workers, out)
    # what the catch-up brings is folded into the index after: the figures it touches are
    # computed again (`Running._fresh`)
    projection.running.ahead(apart.figures, index, apart.totals)
    # meanwhile, what the snapshot holds of the facts alone is encoded in a fork (what this
    # process then computes does not change them), taken unless something is folded since
    encoding, folds = None, projection.running.folds
    if workers >= 2 and len(index.needs) >= APART_FROM and hasattr(os, "fork"):
        encoding = _Forked(functools.partial(_facts_part, index, read))
    try:
        position = await projection.events.position()  # what is logged after it is folded from the log
        await rebuilt.put_in_place()

        # what was accepted while the streams were read: applied once, as the service does
        bus = Bus(redis, streams, delivery=delivery)
        caught_up = 0
        for stream in keys.values():
            after = last.get(stream, "-")
            while tail := await log.events(stream, after, CHUNK):
                after = tail[-1][0]
                for _, raw in tail:
                    event = _parse(raw)
                    if raw is None or event is None:
                        continue
                    effect = Effect(tuple(projection.store(event.key, raw)), once_key=event.key)
                    if await bus.apply_now(GROUP, effect):
                        caught_up += 1

        with collector.paused():
            await projection.adopt(index, position)
            joined = encoding.joined() if encoding is not None else None  # None: it failed (why: stderr)
            if joined is not None:
                projection.facts_part = (folds, snapshot.FactsPart.from_bytes(joined.read(), index.needs))
        projection.read_events, projection.contract_pieces = read, apart.pieces
        try:
            await projection.save_snapshot()  # for the new generation: processes that reload start from it
        finally:
            projection.read_events = projection.facts_part = projection.contract_pieces = None
            read.clear()  # the events' bytes: no longer needed
        after = projection.summary  # the figures but their tables
        unchanged = same_figures(before, after, lambda: projection.figures)
        return {
            "entries_read": done,
            "archived_read": archived,
            "events": after["events_applied"],
            "skipped": skipped,
            "caught_up": caught_up,
            "seconds": round(elapsed, 3),
            "unchanged": unchanged,
            "portfolio": after["portfolio"],
            "before": before["portfolio"],
        }
    finally:
        if encoding is not None:
            encoding.close()
