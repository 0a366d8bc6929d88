"""Hypothesis strategies for hostile input: generated and mutated inbound entries."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from shared.partners import sign
from tests.support import PARTNERS, event, need_data

PIDS = list(PARTNERS)
HOSTILE_TEXT = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(["\u202e", "\x00", "\ud7ff", "e\u0301", "👩\u200d💻", "ＡＢＣ", "\ufeff", "💷" * 30, " ", "\n"]),
)
HOSTILE_MONEY = st.one_of(
    st.sampled_from(["-1.00", "1.001", "1e9", "NaN", "Infinity", "0x10", "١٢٣", "99999999999999999999.00", "", "12,000.00",
                     "1.00\n", "\u0661.\u0660\u0660", "\uff11.00", " 1.00", "1.00 "]),
    st.integers(-10**30, 10**30), st.floats(allow_nan=True), st.none(), st.booleans(),
    st.from_regex(r"\A\d{1,6}(\.\d{1,2})?\Z"),
)
HOSTILE_DATE = st.one_of(
    st.sampled_from(["0000-01-01", "9999-12-31", "2013-02-30", "2013-13-01", "13/01/2013", "2013-01-01T00:00:00Z"]),
    st.integers(), st.dates().map(lambda d: d.isoformat()),
)


def _field_value() -> st.SearchStrategy[Any]:
    return st.one_of(HOSTILE_MONEY, HOSTILE_DATE, HOSTILE_TEXT, st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@st.composite
def mutated_need(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A need event from a registered partner with some of its fields made hostile."""
    pid = draw(st.sampled_from(PIDS))
    data = need_data(partner=pid, n=draw(st.integers(0, 50)))
    for field in draw(st.lists(st.sampled_from(sorted(data) + ["extra_field"]), max_size=3, unique=True)):
        data[field] = draw(_field_value())
    ev = event(data, partner=pid, id=draw(st.sampled_from(["a", "b", "c"])) + str(draw(st.integers(0, 30))))
    if draw(st.booleans()):
        ev[draw(st.sampled_from(["specversion", "type", "time", "source", "id"]))] = draw(_field_value())
    return pid, ev


@st.composite
def hostile_entry(draw: st.DrawFn) -> dict[str, bytes]:
    """The two fields of an inbound entry, in every way a partner system could get them wrong."""
    kind = draw(st.sampled_from(["mutated", "bytes", "huge", "replayed", "forged", "missing", "json", "valid",
                                 "deep", "bignum", "dupkey", "upper"]))
    pid, ev = draw(mutated_need())
    body = json.dumps(ev, ensure_ascii=draw(st.booleans())).encode()
    secret = PARTNERS[pid]
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "huge":
        body = body + b" " * (64 * 1024)
    elif kind == "json":
        body = json.dumps(draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                            max_leaves=8))).encode()
    elif kind == "valid":
        body = json.dumps(event(need_data(partner=pid, n=draw(st.integers(0, 50))), partner=pid,
                                id=f"ok-{draw(st.integers(0, 40))}")).encode()
    elif kind == "deep":  # nested past any parser's recursion limit, signed or not
        n = draw(st.integers(10, 40_000))
        body = body[:-1] + b', "x": ' + b"[" * n + b"]" * n + b"}" if draw(st.booleans()) else b"[" * n + b"]" * n
    elif kind == "bignum":  # Python refuses to convert integers over 4,300 digits
        body = body[:-1] + b', "n": ' + b"9" * draw(st.integers(30, 6000)) + b"}"
    elif kind == "dupkey":  # two values for one key: parsers disagree on which counts
        body = body[:-1] + b', "annual_budget": "1.00", "annual_budget": "1000.00"}'
    signature = sign(secret, body)
    if kind == "upper":
        signature = signature.upper()
    elif kind == "replayed":  # a good signature, then the body changed under it
        body = body.replace(b"1200000.00", b"9200000.00") if b"1200000.00" in body else body + b" "
    elif kind == "forged":
        signature = sign("not-the-key", body)
    fields = {"event": body, "signature": signature.encode()}
    if kind == "missing":
        del fields[draw(st.sampled_from(["event", "signature"]))]
    return fields
