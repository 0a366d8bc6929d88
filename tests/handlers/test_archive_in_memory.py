"""The archive (shared/archive.py) on the in-memory adapters, no Redis: a stream's entries below
an id written to checksummed segments, the mark moved on, the next round going on from it, a
stream held by another process left alone, and the archive read back in order, each entry once.
(tests/integration/test_archive.py archives and trims while the services run on Redis.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import archive as archiving
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.archive import Archive
from shared.streams import Streams

NAMES = Streams("mem")
STREAM = NAMES.of_type("need.identified")


def test_entries_below_an_id_are_archived_a_segment_at_a_time_and_read_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        world = MemoryStreams(NAMES)
        ids = [world.add(STREAM, {"event": f'{{"n":{n}}}'.encode()}) for n in range(25)]
        world.add(STREAM, {"other": b"no event"})
        ports = memory_ports(world)
        archive = Archive(tmp_path, ports.entries, ports.archive, "one")

        assert await archive(STREAM, ids[10]) == f"{int(ids[9].split('-')[0])}-1", "below it: 0..9"
        assert await ports.archive.archived(STREAM) == ids[9]
        assert [p.name.split("_")[0] for p in archive.segments(STREAM)] == [ids[0], ids[4], ids[8]]
        assert await archive(STREAM, ids[10]) == f"{int(ids[9].split('-')[0])}-1", "nothing more below it"
        assert len(archive.segments(STREAM)) == 3

        # another process holds the stream: this one archives nothing and trims nothing
        assert await ports.archive.hold(STREAM, "two", 60_000)
        assert await archive(STREAM, "999-0") == "0-0"
        await ports.archive.release(STREAM)

        last = await archive(STREAM, "999-0")  # the rest, the entry without an event too
        assert last == "26-1" and await ports.archive.archived(STREAM) == "26-0"
        read = list(archive.read(STREAM))
        assert [i for i, _ in read] == [*ids, "26-0"]
        assert [e for _, e in read] == [*(f'{{"n":{n}}}'.encode() for n in range(25)), b""]
        assert await ports.archive.hold(STREAM, "three", 60_000), "let go once done"

    monkeypatch.setattr(archiving, "SEGMENT_ENTRIES", 4)
    asyncio.run(scenario())
