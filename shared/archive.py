"""The event log kept outside Redis: canonical streams archived before they are trimmed.

Segments are zstd-framed JSON lines (`zstandard`, frames with zstd's own content checksum),
one directory per stream under `COMMISSIONING_ARCHIVE_DIR`:

    <dir>/<stream key>/<first id>_<last id>.jsonl.zst      one line per entry: {"id", "event"}
    <dir>/<stream key>/<first id>_<last id>.jsonl.zst.sha256   SHA-256 of the file

A segment is written to a temporary name, synced and renamed, and its checksum file after it:
a segment without a checksum file is unfinished and ignored (it is written again). What is
archived is recorded through the `ArchiveMarks` port (shared.ports; on Redis
`P:archive:<stream>`: the last archived id), and only below it is a stream trimmed. One process
archives a stream at a time (a hold with an expiry). The entries are read through the
`Entries` port: on Redis or in memory alike.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from shared.ports import ArchiveMarks, Entries

SEGMENT_ENTRIES = 10_000
LOCK_MS = 120_000


class CorruptSegment(RuntimeError):
    pass


def _next(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


@dataclass
class Archive:
    """The segments under `root`; `entries` and `marks` (shared.ports) archive more of a stream
    (`__call__`); reading what was archived (`read`) needs the files alone."""

    root: Path
    entries: Entries | None = None
    marks: ArchiveMarks | None = None
    owner: str = "archiver"

    def folder(self, stream: str) -> Path:
        return self.root / stream.replace("/", "_")

    async def __call__(self, stream: str, below: str) -> str:
        """Archive `stream`'s entries below id `below`; the id below which all are archived."""
        if self.entries is None or self.marks is None:
            raise ValueError("archiving a stream needs its entries and the archive's marks (shared.ports)")
        if not await self.marks.hold(stream, self.owner, LOCK_MS):
            return "0-0"  # another process is archiving it: trim nothing this round
        try:
            done = await self.marks.archived(stream)
            while True:
                chunk = await self.entries.events(stream, done, SEGMENT_ENTRIES, below=below)
                if not chunk:
                    return _next(done) if done != "0-0" else "0-0"
                rows = [(i, (e or b"").decode("utf-8", "replace")) for i, e in chunk]
                self._write(stream, rows)
                done = rows[-1][0]
                await self.marks.mark(stream, done)
        finally:
            await self.marks.release(stream)

    def _write(self, stream: str, rows: list[tuple[str, str]]) -> Path:
        folder = self.folder(stream)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{rows[0][0]}_{rows[-1][0]}.jsonl.zst"
        text = "".join(json.dumps({"id": i, "event": e}, separators=(",", ":")) + "\n" for i, e in rows)
        data = zstandard.ZstdCompressor(level=10, write_checksum=True).compress(text.encode())
        _write_synced(final.with_suffix(".tmp"), data).rename(final)
        _write_synced(final.with_name(final.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())
        return final

    def segments(self, stream: str) -> list[Path]:
        """Finished segments, oldest first."""
        folder = self.folder(stream)
        found = [p for p in folder.glob("*.jsonl.zst") if p.with_name(p.name + ".sha256").exists()]
        return sorted(found, key=lambda p: _key(p.name.split("_")[0]))

    def read(self, stream: str) -> Iterator[tuple[str, bytes]]:
        """Every archived entry (id, event bytes), oldest first; each segment's checksum verified."""
        last = "0-0"
        for path in self.segments(stream):
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != path.with_name(path.name + ".sha256").read_text().strip():
                raise CorruptSegment(f"{path}: its SHA-256 does not match {path.name}.sha256")
            try:
                text = zstandard.ZstdDecompressor().decompress(data)
            except zstandard.ZstdError as e:
                raise CorruptSegment(f"{path}: {e}") from e
            for line in text.splitlines():
                row = json.loads(line)
                if _key(row["id"]) > _key(last):  # a segment written twice (crash before the mark)
                    last = row["id"]
                    yield row["id"], row["event"].encode()


def _write_synced(path: Path, data: bytes) -> Path:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path
