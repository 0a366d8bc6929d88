"""A snapshot of the savings projection: its facts and each contract's figures, so a restarted
process reads one value and the log's tail instead of every event, and recomputes only the
contracts the tail touches (shared/state.py saves and restores it).

The encoding is data only (no pickle: a copy of Redis must never run code): a JSON header
(where each fact goes, which needs each contract replaces, the sums), each contract's row as an
update shows it, the needs table, then each fact's payload and each contract's row and figures,
each as its own JSON, in chunks of about 1 MB: each a zstd frame, and each read only when first
used (a restart reads the header and the rows as shown: a contract's figures when an event
touches it, its row when the figures are listed, the needs table when it is asked for, a
payload by its pydantic model, a chunk when one of its pieces is first read); behind
a BLAKE2b digest of the compressed bytes (a damaged value is refused whole, before any of it is
used: zstd's own frame checksum misses a flipped bit in the frame's header, the flag that turns
the checksum on included). Money is
kept as decimal strings, pence as integers, the daily rates as exact fractions (numerator,
denominator). A snapshot records its format and the savings policy it was computed under:
another of either, and it is not used (the state is read whole instead); the business date and
the programme's start it records are its facts' (read again, they would read every payload).
Each contract's row as an update shows it is kept too (as JSON), so that
a restarted process compares what it holds with what dashboards last received without reading
either.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import zstandard
from pydantic_core import from_json, to_json

from services.savings import model
from services.savings.model import Chunk, ContractFigures, Fact, Facts, Reading
from services.savings.running import Packed, Running, packed_slots
from services.savings.updates import shown_json
from shared.contract.registry import PAYLOADS
from shared.policy import SavingsPolicy

FORMAT = 3  # 2: behind a digest; 3: in frames and chunks, each read when first used
#: bytes of the BLAKE2b digest a snapshot starts with
DIGEST_BYTES = 16
MAGIC = b"commissioning-savings-snapshot\n"

_TYPE_OF = {cls: name for name, cls in PAYLOADS.items()}
#: the facts' tables, in the order a snapshot holds them
TABLES = ("needs", "awards", "returns", "decommissions", "exits", "investments")
NEED_COLUMNS = ("type", "key", "revision", "size", "partner", "need")
#: the payloads are compressed in chunks of about this many bytes, each decompressed when one of
#: its payloads is first read (a restart decompresses none)
CHUNK_BYTES = 1 << 20


class Unusable(ValueError):
    """The snapshot cannot be used here (another format, policy, or a damaged value)."""


def _facts(facts: Facts) -> Iterable[tuple[str, tuple[Any, ...], Fact]]:
    """Every fact with where it goes: (its table, its slot's parts, the fact)."""
    for (pid, nid), f in facts.needs.items():
        yield "needs", (pid, nid), f
    for cid, f in facts.awards.items():
        yield "awards", (cid,), f
    for cid, periods in facts.returns.items():
        for (start, end, pid), f in periods.items():
            yield "returns", (cid, start.toordinal(), end.toordinal(), pid), f
    for cid, f in facts.decommissions.items():
        yield "decommissions", (cid,), f
    for (cid, pid), f in facts.exits.items():
        yield "exits", (cid, pid), f
    for (pid, iid), f in facts.investments.items():
        yield "investments", (pid, iid), f


def _place(facts: Facts, table: str, slot: list[Any], fact: Fact) -> None:
    match table:
        case "needs":
            facts.needs[(slot[0], slot[1])] = fact
        case "awards":
            facts.awards[slot[0]] = fact
        case "returns":
            cid, start, end, pid = slot
            facts.returns.setdefault(cid, {})[(date.fromordinal(start), date.fromordinal(end), pid)] = fact
        case "decommissions":
            facts.decommissions[slot[0]] = fact
        case "exits":
            model.exit_into(facts, slot[0], slot[1], fact)
        case "investments":
            facts.investments[(slot[0], slot[1])] = fact
        case _:
            raise Unusable(f"no table {table!r}")


def _contract(c: ContractFigures) -> list[Any]:
    """A contract's figures but its row (the row is a piece of its own: a full read of the
    figures lists every row without reading the figures)."""
    return [
        str(c.baseline),
        str(c.budgets),
        str(c.shared_cost),
        c.shared_cost_estimated,
        c.needs_missing,
        c.end.toordinal(),
        c.status,
        c.decommissioning,
        c.realised_p,
        c.years_p,
        c.years_disc_p,
        c.additions,
        _steps(c.changes),
    ]


def _figures(award: Any, data: list[Any], row: dict[str, Any]) -> ContractFigures:
    (
        baseline,
        budgets,
        shared,
        estimated,
        missing,
        end,
        status,
        decom,
        realised,
        years,
        disc,
        adds,
        steps,
    ) = data
    return ContractFigures(
        award=award,
        baseline=Decimal(baseline),
        budgets=Decimal(budgets),
        shared_cost=Decimal(shared),
        shared_cost_estimated=estimated,
        needs_missing=missing,
        end=date.fromordinal(end),
        status=status,
        segments=[],  # only used while the figures are computed: a touched contract is recomputed whole
        decommissioning=decom,
        realised_p=realised,
        years_p=years,
        years_disc_p=disc,
        row=row,
        additions=adds,  # [partner, figure, pence] lists: `Running._add` unpacks them as it does tuples
        changes=_unsteps(steps),
    )


def _steps(steps: dict[date, Fraction]) -> list[tuple[int, int, int]]:
    return [(d.toordinal(), r.numerator, r.denominator) for d, r in steps.items()]


def _unsteps(steps: list[list[int]]) -> dict[date, Fraction]:
    return {date.fromordinal(d): Fraction(n, q) for d, n, q in steps}


@dataclass(frozen=True)
class Captured:
    """What a snapshot is made of, copied from the projection (under the state's lock, in
    tens of milliseconds) so it can be encoded elsewhere (a worker thread: seconds at tens of
    thousands of contracts) while the projection moves on. The tables are copies; what they
    hold (facts, each contract's figures, rows, warnings) is replaced, never changed in place,
    as the projection moves on."""

    facts: Facts
    policy: dict[str, Any]
    frame: tuple[Any, ...]
    first_start: date | None
    contracts: dict[str, ContractFigures | Packed]
    slots: dict[str, list[tuple[str, str]]]
    packed_slots: dict[str, list[Any]]  # those as the snapshot restored held them
    need_slots: list[tuple[str, str]]  # what their places refer to
    warnings: dict[str, list[str]]
    need_rows: dict[Any, dict[str, Any]]
    need_keys: dict[Any, Any]
    #: the needs table as the snapshot restored held it (`Running.need_pending`), not read yet:
    #: `need_rows` stand over it
    need_pending: bytes | None
    sums: list[Any]


def capture(running: Running, facts: Facts, policy: SavingsPolicy) -> Captured:
    """The projection as it stands (after `running.figures(facts)`), copied for `encode`."""
    if running.facts is not facts or running.pending():
        raise ValueError("the figures are not up to date with the facts: compute them first")
    span = running.frame_of(facts)[1]  # from the programme's start: kept as facts are folded
    return Captured(
        facts=Facts(
            needs=dict(facts.needs),
            awards=dict(facts.awards),
            returns={cid: dict(periods) for cid, periods in facts.returns.items()},
            decommissions=dict(facts.decommissions),
            exits=dict(facts.exits),
            exits_of={cid: dict(exits) for cid, exits in facts.exits_of.items()},
            investments=dict(facts.investments),
            applied=None,
        ),
        policy=policy.model_dump(mode="json"),
        frame=running._frame or (None, ()),
        first_start=span[0] if span else None,
        contracts=dict(running._contracts),
        slots=dict(running._slots),
        packed_slots=dict(running._packed_slots),
        need_slots=running.need_slots,  # not changed in place: a restore makes a new one
        warnings=dict(running._warnings),
        need_rows=dict(running._need_rows),
        need_keys=dict(running._need_keys),
        need_pending=running.need_pending,
        sums=[
            dict(running._sums),
            list(running._years),
            list(running._years_disc),
            {pid: dict(row) for pid, row in running._partners.items()},
            dict(running._partner_refs),
            _steps(running._steps),
        ],
    )


def _needs_table(captured: Captured) -> bytes:
    """The needs table's JSON, compressed on its own (a restart does not decompress it): the
    rows redone since a restore over those it held."""
    if captured.need_pending is not None and not captured.need_rows:
        return captured.need_pending  # none redone: as it was
    rows = {}
    if captured.need_pending is not None:
        table = from_json(zstandard.decompress(captured.need_pending))
        rows = {(pid, nid): (key, row) for pid, nid, key, row in table}
    for slot, row in captured.need_rows.items():
        rows[slot] = (captured.need_keys[slot], row)
    return _compressor().compress(to_json([(*slot, key, row) for slot, (key, row) in rows.items()]))


def encode(captured: Captured) -> bytes:
    """A snapshot's bytes (`capture`'s copy, encoded: it may run in another thread)."""
    placed: dict[str, Any] = {table: [] for table in TABLES}
    chunks = _Chunks()
    read = Reading()  # what was restored and not read since: its chunks are not kept for this
    for table, slot, f in _facts(captured.facts):
        model_class, raw = f.as_json(read)
        placed[table].append((_TYPE_OF[model_class], f.key, f.revision, chunks.add(raw), *slot))
    # the needs by column (most of the facts: a list each, not one a need, to read)
    columns = list(zip(*placed["needs"], strict=True)) or [()] * len(NEED_COLUMNS)
    placed["needs"] = {name: list(column) for name, column in zip(NEED_COLUMNS, columns, strict=True)}
    # a contract's needs by their place among the needs above (a need not identified yet, by
    # partner and need): an integer to read at restore rather than two strings
    place = {slot: k for k, slot in enumerate(captured.facts.needs)}
    contracts, shown_rows = [], []
    for cid in sorted(captured.contracts):
        c = captured.contracts[cid]
        if isinstance(c, Packed):  # as the snapshot restored held it: not read since
            row, data, shown = c.row_json(read), c.data(read), c.shown
        else:
            row, data, shown = to_json(c.row), to_json(_contract(c)), shown_json(c.row)
        slots = captured.slots.get(cid)
        if slots is None:
            slots = packed_slots(captured.packed_slots[cid], captured.need_slots)
        needs = [place.get(slot, slot) for slot in slots]
        contracts.append((cid, chunks.add(row), chunks.add(data), len(shown), needs))
        shown_rows.append(shown)
    chunks.close()
    today, buckets = captured.frame
    header = {
        "format": FORMAT,
        "policy": captured.policy,
        "as_of": today.toordinal() if today else None,
        "first_start": captured.first_start.toordinal() if captured.first_start else None,
        "buckets": [(a.toordinal(), b.toordinal()) for a, b in buckets],
        "facts": placed,
        "contracts": contracts,
        "chunks": chunks.sizes,
        "warnings": captured.warnings,
        "sums": captured.sums,
    }
    compress = _compressor().compress
    sections = [compress(MAGIC + to_json(header)), compress(b"".join(shown_rows)), _needs_table(captured)]
    return pack([*sections, *chunks.frames])


def dump(running: Running, facts: Facts, policy: SavingsPolicy) -> bytes:
    """The projection as it stands (after `running.figures(facts)`), encoded."""
    return encode(capture(running, facts, policy))


def _compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=1, write_checksum=True)


class _Chunks:
    """Pieces, in the order they are added, as zstd frames of about `CHUNK_BYTES` (no piece
    split), each compressed as soon as it is full: an encoding holds one chunk's pieces at a
    time, not every payload."""

    def __init__(self) -> None:
        self._compress = _compressor().compress
        self.frames: list[bytes] = []
        self.sizes: list[int] = []  # what each frame holds
        self._current: list[bytes] = []
        self._filled = 0

    def add(self, piece: bytes) -> int:
        """Add a piece; its size."""
        self._current.append(piece)
        self._filled += len(piece)
        if self._filled >= CHUNK_BYTES:
            self.close()
        return len(piece)

    def close(self) -> None:
        if self._current:
            self.frames.append(self._compress(b"".join(self._current)))
            self.sizes.append(self._filled)
            self._current, self._filled = [], 0


def pack(frames: list[bytes]) -> bytes:
    """A snapshot's bytes: the digest, then each zstd frame behind its length: the magic line
    and the header, the contracts' rows as shown, the needs table, then the payloads' chunks
    (each decompressed when one of its payloads is first read)."""
    packed = b"".join(struct.pack(">Q", len(frame)) + frame for frame in frames)
    return _digest(packed) + packed


def unpack(blob: bytes) -> list[bytes]:
    """The zstd frames of a snapshot's bytes (`pack`); raises `Unusable` when they are not one."""
    digest, packed = blob[:DIGEST_BYTES], blob[DIGEST_BYTES:]
    if not packed or digest != _digest(packed):
        raise Unusable("not a snapshot, or a damaged one: its digest does not match")
    frames, at = [], 0
    while at < len(packed):
        (size,) = struct.unpack(">Q", packed[at : at + 8].ljust(8, b"\0"))
        if at + 8 + size > len(packed):
            raise Unusable("not a snapshot: its frames do not add up to its length")
        frames.append(packed[at + 8 : at + 8 + size])
        at += 8 + size
    if len(frames) < 3:
        raise Unusable("not a snapshot: fewer frames than a snapshot has")
    return frames


def decompress(frame: bytes) -> bytes:
    """One of a snapshot's frames, decompressed; raises `Unusable` when it is not a zstd frame."""
    try:
        return zstandard.ZstdDecompressor().decompress(frame)
    except zstandard.ZstdError as e:
        raise Unusable(f"not a snapshot: {e}") from e


class _Cursor:
    """Where each payload lies, in order: the chunk, its start and end in it."""

    def __init__(self, frames: list[bytes], sizes: list[int]) -> None:
        if len(frames) != len(sizes) or any(
            zstandard.frame_content_size(f) != n for f, n in zip(frames, sizes, strict=False)
        ):
            raise Unusable("the snapshot's payloads do not add up to its length")
        self.chunks, self.sizes = [Chunk(f) for f in frames], sizes
        self.at, self.local, self.limit = -1, 0, 0

    def take(self, size: int) -> tuple[Chunk, int, int]:
        if self.local == self.limit:  # the next chunk
            self.at, self.local = self.at + 1, 0
            if self.at >= len(self.chunks):
                raise Unusable("the snapshot's payloads do not add up to its length")
            self.limit = self.sizes[self.at]
        start = self.local
        self.local += size
        if self.local > self.limit:
            raise Unusable("the snapshot's payloads do not add up to its length")
        return self.chunks[self.at], start, self.local

    def done(self) -> None:
        if self.at != len(self.chunks) - 1 or self.local != self.limit:
            raise Unusable("the snapshot's payloads do not add up to its length")


def _digest(packed: bytes) -> bytes:
    return hashlib.blake2b(packed, digest_size=DIGEST_BYTES).digest()


def _read(packed: Packed) -> ContractFigures:
    return _figures(packed.award.payload, from_json(packed.data()), packed.row())


def restore(blob: bytes, running: Running, policy: SavingsPolicy) -> Facts:
    """The facts a snapshot holds, with `running` set to their figures as they were computed:
    folding more events into the facts and asking for the figures recomputes only what those
    events touch. Each fact's payload, each contract's figures and the needs table are read
    when first used. Raises `Unusable` when the snapshot cannot be used here."""
    frames = unpack(blob)
    head = decompress(frames[0])
    if not head.startswith(MAGIC):
        raise Unusable("not a savings snapshot")
    header = from_json(head[len(MAGIC) :])
    del head
    if header.get("format") != FORMAT:
        raise Unusable(f"snapshot format {header.get('format')}, this version reads {FORMAT}")
    if header["policy"] != policy.model_dump(mode="json"):
        raise Unusable("the savings policy changed since the snapshot")
    try:
        return _restore(header, frames, running)
    except (KeyError, TypeError, ValueError, IndexError, zstandard.ZstdError) as e:  # Unusable: as it is
        if isinstance(e, Unusable):
            raise
        raise Unusable(f"not a snapshot this version reads: {type(e).__name__}: {e}") from e


def _restore(header: dict[str, Any], frames: list[bytes], running: Running) -> Facts:
    facts = Facts(applied=None)  # the facts alone: a process counts its events in its store
    encoded, needs = Fact.encoded, facts.needs
    cursor = _Cursor(frames[3:], header["chunks"])
    take = cursor.take
    for etype, key, revision, size, pid, nid in zip(*map(header["facts"]["needs"].get, NEED_COLUMNS)):
        needs[(pid, nid)] = encoded(key, revision, (PAYLOADS[etype], *take(size)))
    for table in TABLES[1:]:
        for etype, key, revision, size, *slot in header["facts"][table]:
            _place(facts, table, slot, encoded(key, revision, (PAYLOADS[etype], *take(size))))

    today = date.fromordinal(header["as_of"]) if header["as_of"] is not None else None
    first = date.fromordinal(header["first_start"]) if header["first_start"] is not None else None
    buckets = tuple((date.fromordinal(a), date.fromordinal(b)) for a, b in header["buckets"])
    running._reset(facts, (today, buckets), dirty=False)
    # the business date and the programme's start as the snapshot computed them from its facts
    # (reading them again would read every payload)
    running._ends_of, running._ends = facts, (today, first)
    running.unpack = _read
    running.need_slots = list(needs)  # in the header's order: what contracts' needs refer to
    rows, at = decompress(frames[1]), 0
    for cid, row, size, shown, places in header["contracts"]:  # in id order
        running._contracts[cid] = Packed(take(row), take(size), rows[at : at + shown], facts.awards[cid])
        at += shown
        running.index_packed(cid, places)
    cursor.done()
    if at != len(rows):
        raise Unusable("the snapshot's rows do not add up to their length")
    running.need_pending = frames[2]
    running._warnings = header["warnings"]
    sums, years, years_disc, partners, refs, steps = header["sums"]
    running._sums.update(sums)
    running._years, running._years_disc = years, years_disc
    for pid, row in partners.items():
        running._partners[pid].update(row)
    running._partner_refs.update(refs)
    running._steps.update(_unsteps(steps))
    return facts
