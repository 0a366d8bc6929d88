"""Bounds on what a partner may send, checked before any work: size first, then a parse that
cannot be made to recurse deeply, to convert huge numbers or to pick one of two values for a key.

Pure functions, shared by the inbound stream, `POST /events` and its batch mode.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: CONTRACT.md 1.1: one event at most 64 KiB of JSON, a batch at most 4 MiB
MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: nesting of arrays and objects; the deepest contract event (an award's partner list) is 3
MAX_DEPTH = 16
#: characters in one JSON number: money and counts are far shorter; 5,000 digits is an attack
MAX_NUMBER_CHARS = 40

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class TooLarge(ValueError):
    def __init__(self, size: int, limit: int, what: str = "event") -> None:
        super().__init__(f"the {what} is {size} bytes; the limit is {limit} bytes")
        self.size, self.limit = size, limit


class Unparseable(ValueError):
    """Why the bytes are not a JSON document within the bounds (the message says what to fix)."""


def check_size(size: int | None, limit: int = MAX_EVENT_BYTES, what: str = "event") -> None:
    """Refuse a body by its declared or actual size, before reading or parsing it."""
    if size is not None and size > limit:
        raise TooLarge(size, limit, what)


def depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects, outside strings: linear, no recursion."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:  # the usual event: no scan needed
        return MAX_DEPTH
    level = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", raw)):
        if m.group() in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def _int(text: str) -> int:
    _check_number(text)
    return int(text)


def _float(text: str) -> float:
    _check_number(text)
    return float(text)


def _check_number(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise Unparseable(
            f"a JSON number has {len(text)} characters; at most {MAX_NUMBER_CHARS} are accepted"
        )


def _constant(name: str) -> Any:
    raise Unparseable(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise Unparseable(f"the key '{twice[:64]}' appears twice in one object; each key must appear once")
    return doc


# one decoder, its hooks bound once (this runs for every inbound event)
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_int=_int, parse_float=_float, parse_constant=_constant
)


def parse_json(raw: bytes, limit: int = MAX_EVENT_BYTES) -> Any:
    """UTF-8 JSON within the bounds, or `TooLarge` / `Unparseable`; never anything else."""
    check_size(len(raw), limit)
    if depth(raw) > MAX_DEPTH:
        raise Unparseable(f"the JSON is nested more than {MAX_DEPTH} deep")
    try:
        text = raw.decode("utf-8")  # strictly UTF-8: json.loads would also guess UTF-16 and UTF-32
        return _DECODER.decode(text)
    except Unparseable:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise Unparseable(f"the event is not UTF-8 JSON: {e}") from None
