"""A snapshot of the savings projection: its facts and each contract's figures, so a restarted
process reads one value and the log's tail instead of every event, and recomputes only the
contracts the tail touches (shared/state.py saves and restores it).

The encoding is data only (no pickle: a copy of Redis must never run code): a JSON header
(where each fact but the needs' and the awards' goes, the sums), each contract's row as an
update shows it, the needs table (the rows redone since each restore in a frame of their own
after the chunks: `_needs_tables`), the needs in columns (`_NeedsWriter`: a restart makes no
object of a need but its id (`model.Places`); its fact is made when first asked for,
`model.PackedNeeds`), the contracts and the awards in columns (`_ContractsWriter`: where each
one's pieces go, which needs each contract replaces), then each fact's payload and each
contract's row and figures, each as its own JSON, in chunks of about 1 MB: each a zstd frame,
and each read only when first used (a restart reads the header, the rows as shown and the
columns: a contract's figures when an event touches it, its row when the figures are listed,
the needs table when it is asked for, a payload by its pydantic model, a chunk when one of its
pieces is first read); behind a BLAKE2b digest of the compressed bytes (a damaged value is
refused whole, before any of it is used: zstd's own frame checksum misses a flipped bit in the
frame's header, the flag that turns the checksum on included). Money is kept as decimal
strings, pence as integers, the daily rates as exact fractions (numerator, denominator). A
snapshot records its format and the savings policy it was computed under: another of either,
and it is not used (the state is read whole instead); the business date and the programme's
start it records are its facts' (read again, they would read every payload). Each contract's
row as an update shows it is kept too (as JSON), so that a restarted process compares what it
holds with what dashboards last received without reading either.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import zstandard
from pydantic_core import from_json, to_json

from services.savings import model
from services.savings.model import Chunk, ContractFigures, Fact, Facts, PackedNeeds, Places, Reading, Slot
from services.savings.running import Packed, PackedReplacing, Running, packed_slots
from services.savings.updates import shown_json
from shared.contract.registry import PAYLOADS
from shared.decode import decode_once
from shared.policy import SavingsPolicy

#: 2: behind a digest; 3: in frames and chunks, each read when first used; 4: the needs in
#: columns of their own frame, each made a fact when first used; 5: a fact may be held as its
#: whole event (`EVENT`); 6: the contracts and the awards in columns of their own frame (a JSON
#: header listing them took 460 ms to parse at 90,909 contracts, a third of a restart)
FORMAT = 6
#: bytes of the BLAKE2b digest a snapshot starts with
DIGEST_BYTES = 16
MAGIC = b"commissioning-savings-snapshot\n"

#: the type a fact held as its whole event's JSON has (a rebuild's: `Captured.events`), in
#: place of its payload type's
EVENT = "event"


class WholeEvent:
    """Reads a fact held as its whole event's JSON: the payload of the event, decoded as the
    services decode what the project wrote (`shared.decode`)."""

    @staticmethod
    def model_validate_json(raw: bytes) -> Any:
        return decode_once(raw).payload()


#: what reads each fact's JSON, by the type the snapshot records
_READERS: dict[str, Any] = {**PAYLOADS, EVENT: WholeEvent}
_TYPE_OF = {cls: name for name, cls in _READERS.items()}
#: the facts' tables, in the order a snapshot holds them
TABLES = ("needs", "awards", "returns", "decommissions", "exits", "investments")
#: the needs' frame: its columns, in order (what each holds: `_NeedsWriter`)
NEED_COLUMNS = ("partners", "needs", "keys", "key_sizes", "revisions", "types", "sizes", "by", "table")
#: the array type of each column held as one (the others: text)
_ARRAYS = {
    "partners": "I",
    "key_sizes": "H",
    "revisions": "q",
    "types": "B",
    "sizes": "I",
    "by": "i",
    "table": "i",
}
#: the contracts' frame: its columns, in order (what each holds: `_ContractsWriter`)
CONTRACT_COLUMNS = (
    "ids", "rows", "data", "shown", "counts", "places",
    "award_ids", "award_keys", "award_key_sizes", "award_types", "award_revisions", "award_sizes",
)  # fmt: skip
#: the array type of each of them held as one (the others: text)
_CONTRACT_ARRAYS = {
    "rows": "Q",
    "data": "Q",
    "shown": "Q",
    "counts": "I",
    "places": "i",
    "award_key_sizes": "H",
    "award_types": "B",
    "award_revisions": "q",
    "award_sizes": "Q",
}
#: where a piece of a column starts is the sum of the sizes before it: kept for every this many
_BLOCK = 32
#: a snapshot holds its needs table in at most this many frames (`_needs_tables`)
TABLE_FRAMES = 8
#: the payloads are compressed in chunks of about this many bytes, each decompressed when one of
#: its payloads is first read (a restart decompresses none)
CHUNK_BYTES = 1 << 20


class Unusable(ValueError):
    """The snapshot cannot be used here (another format, policy, or a damaged value)."""


#: how long an encoding in a worker thread works before it lets the other threads run, and
#: how many items (needs, facts, contracts, rows) it handles between two looks at the time
PACE_S = 0.001
PACED_EVERY = 256
#: and for how long it then lets them (the least a sleep lasts here is about this)
PACE_PAUSE_S = 0.0001


class Pace:
    """Called often while a snapshot is encoded in a worker thread (`encode(pace=Pace())`):
    after each `PACE_S` of work it gives up the interpreter for a moment, so the event loop's
    thread, waking from I/O, waits that long at most rather than the interpreter's switch
    interval (5 ms) every time, hundreds of times a second. Measured with a thread sleeping
    1 ms in a loop beside an encoding of 6,000 contracts (about a second): 191-194 wakeups
    without it, 517-540 with it."""

    def __init__(self) -> None:
        self._next = time.perf_counter() + PACE_S

    def __call__(self) -> None:
        if time.perf_counter() >= self._next:
            time.sleep(PACE_PAUSE_S)
            self._next = time.perf_counter() + PACE_S


def _unpaced() -> None:
    """An encoding nothing else waits on (a rebuild's, a test's)."""


def _facts(facts: Facts) -> Iterable[tuple[str, tuple[Any, ...], Fact]]:
    """Every fact but the needs' with where it goes: (its table, its slot's parts, the fact)."""
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


def pieces_of(c: ContractFigures) -> tuple[bytes, bytes, bytes]:
    """A contract's pieces as a snapshot writes them: its row, its figures (`_contract`) and its
    row as updates show it (`shown_json`)."""
    return to_json(c.row), to_json(_contract(c)), shown_json(c.row)


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
    need_slots: Sequence[Slot]  # what their places refer to
    warnings: dict[str, list[str]]
    need_rows: dict[Any, dict[str, Any]]
    need_keys: dict[Any, Any]
    #: the needs table as the snapshot restored held it (`Running.need_pending`), not read yet:
    #: `need_rows` stand over it
    need_pending: list[bytes] | None
    sums: list[Any]
    #: the events a rebuild read, by their keys: (the payload it folded, the event's bytes). A
    #: fact folded from one of them is written as those bytes (`WholeEvent`), not encoded again
    #: from its payload (a tenth of a rebuild of 1,000,000 events)
    events: Mapping[str, tuple[Any, bytes]] | None = None
    #: what the snapshot holds of these facts alone, encoded already (a rebuild's: `FactsPart`)
    part: FactsPart | None = None
    #: contracts' pieces encoded already (`pieces_of`), each with the figures it is of: written
    #: for a contract whose figures are those very ones (a rebuild's, encoded where computed)
    pieces: Mapping[str, tuple[ContractFigures, bytes, bytes, bytes]] | None = None


def capture(
    running: Running,
    facts: Facts,
    policy: SavingsPolicy,
    events: Mapping[str, tuple[Any, bytes]] | None = None,
    part: FactsPart | None = None,
    pieces: Mapping[str, tuple[ContractFigures, bytes, bytes, bytes]] | None = None,
) -> Captured:
    """The projection as it stands (after `running.figures(facts)`), copied for `encode`
    (`events`: what a rebuild read, `Captured.events`; `part`: `Captured.part`; `pieces`:
    `Captured.pieces`)."""
    if running.facts is not facts or running.pending():
        raise ValueError("the figures are not up to date with the facts: compute them first")
    span = running.frame_of(facts)[1]  # from the programme's start: kept as facts are folded
    return Captured(
        facts=Facts(
            needs=facts.needs.copy(),  # type: ignore[attr-defined]  # a dict, or PackedNeeds
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
        # in order (keys sorted, steps by day): the same bytes whatever order the contracts
        # were added in (a rebuild adds each worker's totals at once: `Running.ahead`)
        sums=[
            dict(sorted(running._sums.items())),
            list(running._years),
            list(running._years_disc),
            {pid: dict(sorted(row.items())) for pid, row in sorted(running._partners.items())},
            dict(sorted(running._partner_refs.items())),
            _steps(dict(sorted(running.steps().items()))),
        ],
        events=events,
        part=part,
        pieces=pieces,
    )


def _needs_tables(captured: Captured, pace: Callable[[], None] = _unpaced) -> list[bytes]:
    """The needs table's JSON, compressed on its own (a restart does not decompress it): the
    frames a restore held as they are, and the rows redone since in one more, over them (the
    table is not read and written again for the few rows an event redoes: 40% of a restored
    projection's next snapshot at 909,091 needs); read and written as one when there would be
    more than `TABLE_FRAMES`."""
    pending = captured.need_pending
    if pending is not None and not captured.need_rows:
        return pending  # none redone: as they were
    redone = [(*slot, captured.need_keys[slot], row) for slot, row in captured.need_rows.items()]
    if pending is None:  # every row is redone, once (a state read whole, a rebuild): as they are
        return [_compressor().compress(_json_list(redone, pace))]
    if len(pending) < TABLE_FRAMES:
        return [*pending, _compressor().compress(_json_list(redone, pace))]
    rows = {}
    for frame in pending:
        pace()
        for pid, nid, key, row in from_json(zstandard.decompress(frame)):
            rows[(pid, nid)] = (key, row)
    for pid, nid, key, row in redone:
        rows[(pid, nid)] = (key, row)
    table = [(*slot, key, row) for slot, (key, row) in rows.items()]
    return [_compressor().compress(_json_list(table, pace))]


def _json_list(items: list[Any], pace: Callable[[], None]) -> bytes:
    """`to_json(items)`, the same bytes, written `PACED_EVERY` items at a time with `pace`
    between: written whole, the needs table held the interpreter for 96 ms at 60,000 needs."""
    if len(items) <= PACED_EVERY:
        return to_json(items)
    parts = []
    for k in range(0, len(items), PACED_EVERY):
        pace()
        parts.append(to_json(items[k : k + PACED_EVERY])[1:-1])
    return b"[" + b",".join(parts) + b"]"


def encode(captured: Captured, pace: Callable[[], None] = _unpaced) -> bytes:
    """A snapshot's bytes (`capture`'s copy, encoded: it may run in another thread, and then
    `pace` is called as it goes: `Pace`)."""
    read = Reading()  # what was restored and not read since: its chunks are not kept for this
    part = captured.part or facts_part(captured.facts, captured.events, pace, read)
    chunks, needs, placed = part.chunks, part.needs, part.placed
    encoded = captured.pieces or {}
    contracts, shown_rows = _ContractsWriter(), []
    for k, cid in enumerate(sorted(captured.contracts)):
        if not k % PACED_EVERY:
            pace()
        c = captured.contracts[cid]
        got = encoded.get(cid)
        if got is not None and got[0] is c:  # encoded already, from these very figures
            row, data, shown = got[1:]
        elif isinstance(c, Packed):  # as the snapshot restored held it: not read since
            row, data, shown = c.row_json(read), c.data(read), c.shown
        else:
            row, data, shown = pieces_of(c)
        slots = captured.slots.get(cid)
        if slots is None:
            slots = packed_slots(captured.packed_slots[cid], captured.need_slots)
        contracts.add(cid, chunks.add(row), chunks.add(data), len(shown), needs.replaced_by(k, slots))
        shown_rows.append(shown)
    chunks.close()
    contracts.add_awards(placed["awards"])
    tables = _needs_tables(captured, pace)
    today, buckets = captured.frame
    header = {
        "format": FORMAT,
        "policy": captured.policy,
        "as_of": today.toordinal() if today else None,
        "first_start": captured.first_start.toordinal() if captured.first_start else None,
        "buckets": [(a.toordinal(), b.toordinal()) for a, b in buckets],
        "needs": needs.header(),
        "facts": {table: placed[table] for table in TABLES[2:]},  # the awards: with the contracts
        "contracts": contracts.header(),
        "chunks": chunks.sizes,
        "tables": len(tables),
        # by contract, the same order each run; none for a contract without (most: a list each
        # was a twelfth of a restart's time at 90,909 contracts)
        "warnings": {cid: held for cid, held in sorted(captured.warnings.items()) if held},
        "sums": captured.sums,
    }
    compress = _compressor().compress
    sections = [
        compress(MAGIC + to_json(header)),
        compress(b"".join(shown_rows)),
        tables[0],
        compress(needs.columns()),
        compress(contracts.columns()),
    ]
    return pack([*sections, *chunks.frames, *tables[1:]])


class FactsPart:
    """What a snapshot holds of its facts alone, encoded: the needs' frame but which contracts
    replace each need (`_NeedsWriter`), where every other fact goes (`placed`), and every fact's
    payload in the first of the chunks (the contracts' rows and figures follow them). A rebuild
    encodes it in a process of its own while it computes the figures (services/savings/rebuild.py),
    and hands it over as bytes (`to_bytes`: data only, like the snapshot)."""

    def __init__(self, needs: _NeedsWriter, placed: dict[str, Any], chunks: _Chunks) -> None:
        self.needs, self.placed, self.chunks = needs, placed, chunks

    def to_bytes(self) -> bytes:
        needs, chunks = self.needs, self.chunks
        columns = [_le(needs._columns[name]) for name in _ARRAYS]
        meta = {
            "partners": list(needs._partners),
            "types": list(needs._types),
            "seed": needs._seed.hex(),
            "placed": self.placed,
            "sizes": chunks.sizes,
            "frames": len(chunks.frames),
        }
        texts = needs.texts()
        return pack(
            [to_json(meta), texts["needs"], texts["keys"], *columns, *chunks.frames, *chunks._current]
        )

    @classmethod
    def from_bytes(cls, raw: bytes, needs: Any) -> FactsPart:
        """`to_bytes`' part, of these needs (the facts' it was encoded from: each one's place is
        its place among them)."""
        head, ids, keys, *blobs = unpack(raw, least=3)
        meta = from_json(head)
        writer = _NeedsWriter.__new__(_NeedsWriter)
        writer.place = {slot: k for k, (slot, _) in enumerate(needs.items())}
        writer._partners = dict(zip(meta["partners"], itertools.count()))
        writer._types = dict(zip(meta["types"], itertools.count()))
        writer._columns = {name: _array(code, blobs[k]) for k, (name, code) in enumerate(_ARRAYS.items())}
        writer._seed, writer._text = bytes.fromhex(meta["seed"]), {"needs": ids, "keys": keys}
        writer._ids, writer._keys, writer._several, writer._unplaced = [], [], {}, {}
        chunks = _Chunks()
        frames = blobs[len(_ARRAYS) :]
        chunks.frames, chunks.sizes = frames[: meta["frames"]], meta["sizes"]
        for piece in frames[meta["frames"] :]:  # the chunk not full yet: the contracts' go on it
            chunks.add(piece)
        return cls(writer, meta["placed"], chunks)


def facts_part(
    facts: Facts,
    events: Mapping[str, tuple[Any, bytes]] | None,
    pace: Callable[[], None] = _unpaced,
    read: Reading | None = None,
) -> FactsPart:
    """What a snapshot of these facts holds of them alone (`FactsPart`), encoded (`events`:
    what a rebuild read, `Captured.events`)."""
    chunks = _Chunks()
    json_of = _json_of(events, read or Reading())
    needs = _NeedsWriter(facts.needs, chunks, json_of, pace)  # their payloads first
    placed: dict[str, Any] = {table: [] for table in TABLES[1:]}
    for n, (table, slot, f) in enumerate(_facts(facts)):
        if not n % PACED_EVERY:
            pace()
        model_class, raw = json_of(f)
        placed[table].append((_TYPE_OF[model_class], f.key, f.revision, chunks.add(raw), *slot))
    return FactsPart(needs, placed, chunks)


def _json_of(
    events: Mapping[str, tuple[Any, bytes]] | None, read: Reading
) -> Callable[[Fact], tuple[Any, bytes]]:
    """How each fact is written: its whole event's bytes when `events` has the event it was
    folded from (the same payload object), else `Fact.as_json`."""
    if not events:
        return lambda f: f.as_json(read)
    get = events.get

    def json_of(f: Fact) -> tuple[Any, bytes]:
        read_from = get(f.key)
        if read_from is not None and f.holds(read_from[0]):
            return WholeEvent, read_from[1]
        return f.as_json(read)

    return json_of


def _le(column: array[int]) -> bytes:
    """An array's bytes, little-endian whatever the machine."""
    if sys.byteorder == "big":
        column = array(column.typecode, column)
        column.byteswap()
    return column.tobytes()


def _flags(column: bytes, yes: Callable[[int], bool]) -> int:
    """One byte column (every 4th byte of a column of 4-byte values) as an integer holding, for
    each value, a byte 1 where `yes(its byte)` and 0 where not."""
    return int.from_bytes(column.translate(bytes(int(yes(b)) for b in range(256))), "little")


def _counted_within(data: bytes, low: int, high: int) -> int | None:
    """How many values of a column of 4-byte little-endian integers (`_le`'s bytes) are `low`
    (-2, -1 or 0), or None when one lies outside [low, high) (0 <= high <= 2**24): their bytes
    looked at a byte column at a time (`bytes.translate`, then each column of flags as one
    integer), not each value made an `int` (`min`, `max` and `count` over the needs' columns at
    909,091 needs took 247-311 ms, a tenth of a restart; this, 127-149). A value is within when
    its top byte is 0 and its three others, most significant first, are below `high`'s; or when
    its top byte is 0xFF and it is at least `low` (-1: the others all 0xFF; -2: 0xFE or 0xFF
    last)."""
    if low not in (-2, -1, 0) or not 0 <= high <= 1 << 24 or len(data) % 4:
        raise ValueError(f"not a range this check takes: [{low}, {high}) over {len(data)} bytes")
    b0, b1, b2, b3 = (data[k::4] for k in range(4))
    h0, h1, h2 = high & 0xFF, (high >> 8) & 0xFF, high >> 16
    below = _flags(b2, lambda b: b < h2) | (
        _flags(b2, lambda b: b == h2)
        & (_flags(b1, lambda b: b < h1) | (_flags(b1, lambda b: b == h1) & _flags(b0, lambda b: b < h0)))
    )
    ok = _flags(b3, lambda b: b == 0) & below
    at_low = 0
    if low < 0:
        top = _flags(b3, lambda b: b == 0xFF) & _flags(b2, lambda b: b == 0xFF)
        at_low = top & _flags(b1, lambda b: b == 0xFF)
        ok |= at_low & _flags(b0, lambda b: b >= 0x100 + low)
        at_low &= _flags(b0, lambda b: b == 0x100 + low)
    if ok != int.from_bytes(b"\x01" * (len(data) // 4), "little"):
        return None
    return at_low.bit_count() if low < 0 else 0


def _array(code: str, data: bytes) -> array[int]:
    """`_le`'s bytes, read back."""
    column = array(code)
    if len(data) % column.itemsize:
        raise Unusable("not a snapshot: a column is not whole")
    column.frombytes(data)
    if sys.byteorder == "big":
        column.byteswap()
    return column


class _NeedsWriter:
    """The needs' frame, written: for each need, in one column each (`NEED_COLUMNS`), its
    partner (a place among the header's `partners`), its id (the ids one text, a line each: an
    id holds no whitespace), its fact's key (the keys one text, with each one's length),
    revision, payload type (a place among the header's `types`) and payload's size (the
    needs' payloads come first, in this order); and which contracts replace it (`by`: a
    contract's place among the contracts in id order, -1 for none, -2 for several, listed in
    the header's `several`); and the table that finds a need's place from its slot
    (`model.Places`, keyed by the header's `seed`). A restart makes no object of a need."""

    def __init__(
        self,
        needs: Any,
        chunks: _Chunks,
        json_of: Callable[[Fact], tuple[Any, bytes]],
        pace: Callable[[], None] = _unpaced,
    ) -> None:
        self.place: dict[Slot, int] = {}
        self._partners: dict[str, int] = {}
        self._types: dict[str, int] = {}
        self._columns = {name: array(code) for name, code in _ARRAYS.items()}
        partners, types, sizes = self._columns["partners"], self._columns["types"], self._columns["sizes"]
        key_sizes, revisions = self._columns["key_sizes"], self._columns["revisions"]
        self._ids: list[str] = []
        self._keys: list[str] = []
        self._text: dict[str, bytes] | None = None  # `texts`
        for k, (slot, f) in enumerate(needs.items()):
            if not k % PACED_EVERY:
                pace()
            model_class, raw = json_of(f)
            self.place[slot] = k
            partners.append(self._partners.setdefault(slot[0], len(self._partners)))
            self._ids.append(slot[1])
            self._keys.append(f.key)
            key_sizes.append(len(f.key))
            revisions.append(f.revision)
            types.append(self._types.setdefault(_TYPE_OF[model_class], len(self._types)))
            sizes.append(chunks.add(raw))
        self._columns["by"] = array("i", [-1]) * len(self.place)
        base = needs.places if isinstance(needs, PackedNeeds) else None  # its needs come first
        self._seed, self._columns["table"] = Places.table(list(self.place), base, pace)
        self._several: dict[int, list[int]] = {}
        self._unplaced: dict[Slot, list[int]] = {}

    def replaced_by(self, contract: int, slots: list[Slot]) -> list[Any]:
        """Note that the contract at this place (in id order) replaces these needs; its needs as
        the snapshot holds them: each need's place, or [partner, need] for one not identified."""
        by, place = self._columns["by"], self.place
        needs = [place.get(slot, slot) for slot in slots]
        for need in dict.fromkeys(needs):  # a need named twice by one award: once
            if type(need) is not int:
                self._unplaced.setdefault(need, []).append(contract)
            elif by[need] == -1:
                by[need] = contract
            elif by[need] >= 0:
                self._several[need], by[need] = [by[need], contract], -2
            else:
                self._several[need].append(contract)
        return needs

    def header(self) -> dict[str, Any]:
        return {
            "count": len(self.place),
            "seed": self._seed.hex(),
            "partners": list(self._partners),
            "types": list(self._types),
            "several": list(self._several.items()),
            "unplaced": [(*slot, contracts) for slot, contracts in self._unplaced.items()],
            "sizes": [len(column) for column in self._encoded()],
        }

    def columns(self) -> bytes:
        return b"".join(self._encoded())

    def texts(self) -> dict[str, bytes]:
        """The columns held as text: the needs' ids and their facts' keys."""
        if self._text is None:
            self._text = {"needs": _lines(self._ids), "keys": "".join(self._keys).encode()}
        return self._text

    def _encoded(self) -> list[bytes]:
        text = self.texts()
        return [text[name] if name in text else _le(self._columns[name]) for name in NEED_COLUMNS]


class _ContractsWriter:
    """The contracts' frame, written: for each contract, in id order, in one column each
    (`CONTRACT_COLUMNS`), its id (the ids one text, a line each: an id holds no whitespace), the
    sizes of its row, of its figures and of its row as shown, and the needs its award names (how
    many, then each one's place among the needs: `_NeedsWriter`; -1 for a need not identified
    yet, listed in the header's `unplaced` with its slot); then for each award, in the order
    their payloads lie, its contract's id, its fact's key (the keys one text, with each one's
    length), its payload's type (a place among the header's `types`), revision and size. A
    restart parses no JSON of them."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._award_ids: list[str] = []
        self._award_keys: list[str] = []
        self._types: dict[str, int] = {}
        self._unplaced: list[tuple[int, int, str, str]] = []  # (contract, position, partner, need)
        self._columns = {name: array(code) for name, code in _CONTRACT_ARRAYS.items()}
        self._parts: list[bytes] | None = None

    def add(self, cid: str, row: int, data: int, shown: int, needs: list[Any]) -> None:
        """The next contract (in id order): its pieces' sizes, and its needs as
        `_NeedsWriter.replaced_by` gives them."""
        k, columns = len(self._ids), self._columns
        self._ids.append(cid)
        columns["rows"].append(row)
        columns["data"].append(data)
        columns["shown"].append(shown)
        columns["counts"].append(len(needs))
        places = columns["places"]
        for position, need in enumerate(needs):
            if type(need) is int:
                places.append(need)
            else:
                places.append(-1)
                self._unplaced.append((k, position, need[0], need[1]))

    def add_awards(self, placed: list[Any]) -> None:
        """The awards, as `facts_part` placed them: (type, key, revision, size, contract id)."""
        columns = self._columns
        key_sizes, types = columns["award_key_sizes"], columns["award_types"]
        revisions, sizes = columns["award_revisions"], columns["award_sizes"]
        for etype, key, revision, size, cid in placed:
            self._award_ids.append(cid)
            self._award_keys.append(key)
            key_sizes.append(len(key))
            types.append(self._types.setdefault(etype, len(self._types)))
            revisions.append(revision)
            sizes.append(size)

    def header(self) -> dict[str, Any]:
        return {
            "count": len(self._ids),
            "awards": len(self._award_ids),
            "types": list(self._types),
            "unplaced": self._unplaced,
            "sizes": [len(part) for part in self._encoded()],
        }

    def columns(self) -> bytes:
        return b"".join(self._encoded())

    def _encoded(self) -> list[bytes]:
        if self._parts is None:
            text = {
                "ids": _lines(self._ids),
                "award_ids": _lines(self._award_ids),
                "award_keys": "".join(self._award_keys).encode(),
            }
            self._parts = [
                text[name] if name in text else _le(self._columns[name]) for name in CONTRACT_COLUMNS
            ]
        return self._parts


def _lines(ids: list[str]) -> bytes:
    """Ids as one text, a line each (an id holds no whitespace)."""
    text = "\n".join(ids)
    if text.count("\n") != max(len(ids) - 1, 0):
        raise ValueError("an id holds a line break")
    return text.encode()


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
    and the header, the contracts' rows as shown, the needs table, the needs' columns, the
    contracts' columns, the payloads' chunks (each decompressed when one of its payloads is
    first read), then the rows of the needs table redone since, one frame for each restore
    they were redone after."""
    packed = b"".join(struct.pack(">Q", len(frame)) + frame for frame in frames)
    return _digest(packed) + packed


def unpack(blob: bytes, least: int = 5) -> list[bytes]:
    """The zstd frames of a snapshot's bytes (`pack`); raises `Unusable` when they are not one
    (of `least` frames at least)."""
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
    if len(frames) < least:
        raise Unusable("not a snapshot: fewer frames than a snapshot has")
    return frames


def decompress(frame: bytes) -> bytes:
    """One of a snapshot's frames, decompressed; raises `Unusable` when it is not a zstd frame."""
    try:
        return zstandard.ZstdDecompressor().decompress(frame)
    except zstandard.ZstdError as e:
        raise Unusable(f"not a snapshot: {e}") from e


class _Offsets:
    """Where each piece of a column lies, from their sizes: the sums of each `_BLOCK` sizes are
    kept, the rest summed when a piece is asked for (no object a piece at restore)."""

    def __init__(self, sizes: array[int]) -> None:
        self.sizes = sizes
        block_sums = (sum(sizes[k : k + _BLOCK]) for k in range(0, len(sizes), _BLOCK))
        self.blocks = list(itertools.accumulate(block_sums, initial=0))
        self.total = self.blocks[-1]

    def span(self, k: int) -> tuple[int, int]:
        block = k // _BLOCK
        start = self.blocks[block] + sum(self.sizes[block * _BLOCK : k])
        return start, start + self.sizes[k]

    def ends_at(self, at: int) -> bool:
        """Whether a piece ends at `at` (or `at` is 0)."""
        block = bisect.bisect_right(self.blocks, at) - 1
        if block == len(self.blocks) - 1:
            return at == self.total
        ends = itertools.accumulate(
            self.sizes[block * _BLOCK : (block + 1) * _BLOCK], initial=self.blocks[block]
        )
        return at in ends


def _read_needs(
    head: dict[str, Any], frame: bytes, cursor: _Cursor, cids: list[str]
) -> tuple[PackedNeeds, PackedReplacing, dict[Slot, str | list[str]]]:
    """The needs of a snapshot's frame (`_NeedsWriter`): their facts, each made when first used;
    which contracts replace each; and which replace the needs not identified yet. The payloads'
    cursor is left after the needs'."""
    n, raw, sizes = head["count"], decompress(frame), head["sizes"]
    if len(sizes) != len(NEED_COLUMNS) or sum(sizes) != len(raw):
        raise Unusable("not a snapshot: the needs' columns do not add up to their frame")
    columns: dict[str, Any] = {}
    parts: dict[str, bytes] = {}  # each column's bytes, as written: their bounds are checked on them
    at = 0
    for name, size in zip(NEED_COLUMNS, sizes, strict=True):
        part, at = raw[at : at + size], at + size
        columns[name] = _array(_ARRAYS[name], part) if name in _ARRAYS else part.decode()
        parts[name] = part
    del raw
    ids = columns["needs"].split("\n") if n else []
    partners, types = head["partners"], [_READERS[t] for t in head["types"]]
    keys, revisions, of_type, by = columns["keys"], columns["revisions"], columns["types"], columns["by"]
    key_at, payload_at, table = _Offsets(columns["key_sizes"]), _Offsets(columns["sizes"]), columns["table"]
    if (
        len(ids) != n
        or any(len(columns[name]) != n for name in _ARRAYS if name != "table")
        or len(partners) > 1 << 24
        or len(cids) > 1 << 24
        or n > 1 << 24
        or len(table) < max(2 * n, 8)
        or len(table) & (len(table) - 1)
    ):
        raise Unusable("not a snapshot: the needs' columns do not hold what they say")
    several_by = _counted_within(parts["by"], -2, len(cids))  # -2: several contracts replace it
    if (
        _counted_within(parts["partners"], 0, len(partners)) is None
        or parts["types"].translate(None, bytes(range(min(len(types), 256))))  # each < len(types)
        or key_at.total != len(keys)
        or _counted_within(parts["table"], -1, n) != len(table) - n  # None: a place out of range
    ):
        raise Unusable("not a snapshot: the needs' columns do not hold what they say")
    cursor.skip_to(payload_at)
    locate = cursor.locate

    def make(k: int) -> Fact:
        start, end = key_at.span(k)
        return Fact.encoded(keys[start:end], revisions[k], (types[of_type[k]], *locate(*payload_at.span(k))))

    key_sizes, payload_sizes = columns["key_sizes"], columns["sizes"]

    def every() -> Iterator[Fact]:
        """Each need's fact in order, the sums kept as it goes (a snapshot's encoding reads all)."""
        key_start = payload_start = 0
        for k in range(n):
            key_end, payload_end = key_start + key_sizes[k], payload_start + payload_sizes[k]
            place = (types[of_type[k]], *locate(payload_start, payload_end))
            yield Fact.encoded(keys[key_start:key_end], revisions[k], place)
            key_start, payload_start = key_end, payload_end

    places = Places(partners, columns["partners"], ids, table, bytes.fromhex(head["seed"]))
    several = {k: [cids[c] for c in contracts] for k, contracts in head["several"]}
    if several_by != len(several) or any(by[k] != -2 for k in several):  # None: one out of range
        raise Unusable("not a snapshot: the needs' columns do not hold what they say")
    unplaced = {(pid, nid): [cids[c] for c in contracts] for pid, nid, contracts in head["unplaced"]}
    return (
        PackedNeeds(places, make, every),
        PackedReplacing(places, by, cids, several),
        {slot: held[0] if len(held) == 1 else held for slot, held in unplaced.items()},
    )


class _Cursor:
    """Where each payload lies: the chunk, its start and end in it (no piece lies across two
    chunks); `taken` reads them in order."""

    def __init__(self, frames: list[bytes], sizes: list[int]) -> None:
        if len(frames) != len(sizes) or any(
            zstandard.frame_content_size(f) != n or n <= 0 for f, n in zip(frames, sizes, strict=False)
        ):
            raise Unusable("the snapshot's payloads do not add up to its length")
        self.chunks = [Chunk(f) for f in frames]
        #: where each chunk starts among the payloads, and where the last ends
        self.starts = list(itertools.accumulate(sizes, initial=0))
        self.at, self._chunk = 0, 0  # where the next piece starts, and the chunk it may be in

    def locate(self, start: int, end: int) -> tuple[Chunk, int, int]:
        k = bisect.bisect_right(self.starts, start) - 1
        if not 0 <= k < len(self.chunks) or not start <= end <= self.starts[k + 1]:
            raise Unusable("the snapshot's payloads do not add up to its length")
        return self.chunks[k], start - self.starts[k], end - self.starts[k]

    def taken(self, sizes: Iterable[int]) -> Iterator[tuple[Chunk, int, int]]:
        """The next pieces, one of each of `sizes` in turn, in one loop rather than a call each (a
        restart takes 272,727 pieces at 90,909 contracts); the cursor moves on once all are
        taken."""
        chunks, starts, last = self.chunks, self.starts, len(self.chunks) - 1
        k, start = self._chunk, self.at
        try:
            base, limit, chunk = (starts[k], starts[k + 1], chunks[k]) if chunks else (0, 0, None)
            for size in sizes:
                end = start + size
                while start >= limit and k < last:  # the next chunk
                    k += 1
                    base, limit, chunk = starts[k], starts[k + 1], chunks[k]
                if chunk is None or not base <= start <= end <= limit:
                    raise Unusable("the snapshot's payloads do not add up to its length")
                yield chunk, start - base, end - base
                start = end
        finally:
            self.at, self._chunk = start, k

    def skip_to(self, pieces: _Offsets) -> None:
        """Go on after `pieces`, read elsewhere (the first of the payloads: none lies across two
        chunks)."""
        for start in self.starts[1:]:
            if start >= pieces.total:
                break
            if not pieces.ends_at(start):
                raise Unusable("the snapshot's payloads do not add up to its length")
        if pieces.total > self.starts[-1]:
            raise Unusable("the snapshot's payloads do not add up to its length")
        self.at = pieces.total
        self._chunk = max(bisect.bisect_right(self.starts, self.at) - 2, 0)

    def done(self) -> None:
        if self.at != self.starts[-1]:
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


def _read_contracts(head: dict[str, Any], frame: bytes, needs: int) -> dict[str, Any]:
    """The contracts' frame (`_ContractsWriter`), its columns by name (a text split in lines,
    an array, or the awards' keys as one text), checked to hold what the header says (of these
    many needs)."""
    n, awarded, raw, sizes = head["count"], head["awards"], decompress(frame), head["sizes"]
    if len(sizes) != len(CONTRACT_COLUMNS) or sum(sizes) != len(raw):
        raise Unusable("not a snapshot: the contracts' columns do not add up to their frame")
    columns: dict[str, Any] = {}
    at = 0
    for name, size in zip(CONTRACT_COLUMNS, sizes, strict=True):
        part, at = raw[at : at + size], at + size
        columns[name] = _array(_CONTRACT_ARRAYS[name], part) if name in _CONTRACT_ARRAYS else part.decode()
    del raw
    columns["ids"] = columns["ids"].split("\n") if n else []
    columns["award_ids"] = columns["award_ids"].split("\n") if awarded else []
    counts, unplaced = columns["counts"], head["unplaced"]
    if (
        any(len(columns[name]) != n for name in CONTRACT_COLUMNS[:5])
        or any(len(columns[name]) != awarded for name in CONTRACT_COLUMNS[6:] if name != "award_keys")
        or sum(counts) != len(columns["places"])
        or sum(columns["award_key_sizes"]) != len(columns["award_keys"])
        or _counted_within(_le(columns["places"]), -1, needs) != len(unplaced)  # None: one out of range
    ):
        raise Unusable("not a snapshot: the contracts' columns do not hold what they say")
    if unplaced:
        starts = list(itertools.accumulate(counts, initial=0))
        if any(
            not (0 <= k < n and 0 <= position < counts[k]) or columns["places"][starts[k] + position] != -1
            for k, position, _, _ in unplaced
        ):
            raise Unusable("not a snapshot: the contracts' columns do not hold what they say")
    return columns


def _restore(header: dict[str, Any], frames: list[bytes], running: Running) -> Facts:
    chunks = len(header["chunks"])
    cursor = _Cursor(frames[5 : 5 + chunks], header["chunks"])
    tables = [frames[2], *frames[5 + chunks :]]
    if len(tables) != header["tables"] or len(tables) > TABLE_FRAMES:
        raise Unusable("the snapshot's frames do not add up to its length")
    if any(zstandard.frame_content_size(frame) < 0 for frame in tables):
        raise Unusable("not a snapshot: its needs table is not in zstd frames")
    columns = _read_contracts(header["contracts"], frames[4], header["needs"]["count"])
    cids = columns["ids"]  # in id order
    needs, replacing, unplaced = _read_needs(header["needs"], frames[3], cursor, cids)
    facts = Facts(needs=needs, applied=None)  # the facts alone: a process counts its events in its store
    encoded, awards = Fact.encoded, facts.awards
    readers, keys, key_at = [_READERS[t] for t in header["contracts"]["types"]], columns["award_keys"], 0
    for cid, key_size, of_type, revision, (chunk, start, end) in zip(  # most facts: no `_place`
        columns["award_ids"],
        columns["award_key_sizes"],
        columns["award_types"],
        columns["award_revisions"],
        cursor.taken(columns["award_sizes"]),
        strict=True,
    ):
        awards[cid] = encoded(
            keys[key_at : key_at + key_size], revision, (readers[of_type], chunk, start, end)
        )
        key_at += key_size
    for table in TABLES[2:]:
        placed = header["facts"][table]
        pieces = cursor.taken(size for _, _, _, size, *_ in placed)
        for (etype, key, revision, _, *slot), piece in zip(placed, pieces, strict=True):
            _place(facts, table, slot, encoded(key, revision, (_READERS[etype], *piece)))

    today = date.fromordinal(header["as_of"]) if header["as_of"] is not None else None
    first = date.fromordinal(header["first_start"]) if header["first_start"] is not None else None
    buckets = tuple((date.fromordinal(a), date.fromordinal(b)) for a, b in header["buckets"])
    running._reset(facts, (today, buckets), dirty=False)
    # the business date and the programme's start as the snapshot computed them from its facts
    # (reading them again would read every payload)
    running._ends_of, running._ends = facts, (today, first)
    running.unpack = _read
    running.need_slots = needs.places  # in the snapshot's order: what contracts' needs refer to
    running.replacing_packed = replacing
    running._slot_contracts.update(unplaced)
    rows, at, place_at, places = decompress(frames[1]), 0, 0, columns["places"]
    contracts, packed = running._contracts, running._packed_slots
    taken = cursor.taken(itertools.chain.from_iterable(zip(columns["rows"], columns["data"], strict=True)))
    for cid, (row, data), shown, count in zip(  # in id order
        cids, zip(taken, taken), columns["shown"], columns["counts"], strict=True
    ):
        contracts[cid] = Packed(row, data, rows[at : at + shown], facts.awards[cid])
        packed[cid] = places[place_at : place_at + count]  # each need's place (-1: unplaced)
        at += shown
        place_at += count
    for k, position, pid, nid in header["contracts"]["unplaced"]:  # [partner, need] in their place
        held = packed[cids[k]] = list(packed[cids[k]])
        held[position] = [pid, nid]
    cursor.done()
    if at != len(rows) or len(contracts) != len(cids):
        raise Unusable("the snapshot's rows do not add up to their length")
    running.need_pending = tables
    running._warnings = header["warnings"]
    sums, years, years_disc, partners, refs, steps = header["sums"]
    running._sums.update(sums)
    running._years, running._years_disc = years, years_disc
    for pid, row in partners.items():
        running._partners[pid].update(row)
    running._partner_refs.update(refs)
    running._steps.update(_unsteps(steps))
    return facts
