"""Validate once: the gateway validates a partner's event against the contract; what the
services read afterwards (`P:<type>`, `P:requests:<owner>`, their own state) was written by the
project itself, so it is decoded in one pass from the raw bytes (pydantic's
`model_validate_json` on a union keyed by `type`) into the typed payload, without checking
the envelope again. The payload models still build their types (Decimal money, dates) as the
contract defines them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from shared.events import PAYLOADS, CloudEvent, Payload

T = TypeVar("T")


class _MadeOnce(Generic[T]):
    """A value made from an event the first time it is asked for and kept on it (in its
    `__dict__`, which answers from then on): `functools.cached_property` without the lock
    Python 3.11 takes at each first look (1.5-2.7 us the first time, against 0.3-0.5 to make a
    key; a rebuild asks once an event). Two threads asking at once both make it: the same value."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self.make, self.name, self.__doc__ = make, make.__name__, make.__doc__

    def __get__(self, event: Any, owner: type | None = None) -> T:
        if event is None:
            return self  # type: ignore[return-value] - looked up on the class
        value = event.__dict__[self.name] = self.make(event)
        return value


class Decoded(BaseModel):
    """An event read from the project's own streams: the envelope's identifiers and the
    typed payload (what handlers use of a `CloudEvent`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, ignored_types=(_MadeOnce,))

    id: str
    source: str
    correlationid: str | None = None
    data: Any

    @_MadeOnce
    def key(self) -> str:
        """`source id`: made once for the event, which every reader of its process shares and
        asks for several times (its once-key, its place in each state: 0.38 us each time)."""
        return f"{self.source} {self.id}"

    @property
    def correlation_id(self) -> str:
        return self.correlationid or self.id

    def payload(self) -> Payload:
        return self.data  # type: ignore[no-any-return]


def _model(event_type: str, payload: type[Payload]) -> type[Decoded]:
    name = "Decoded_" + "".join(part.title() for part in event_type.replace(".", "_").split("_"))
    fields: dict[str, Any] = {"type": (Literal[event_type], ...), "data": (payload, ...)}
    return create_model(name, __base__=Decoded, **fields)  # type: ignore[no-any-return]


_MODELS = tuple(_model(t, p) for t, p in PAYLOADS.items())
_ONE_OF = Union[_MODELS]  # type: ignore[valid-type]  # noqa: UP007 - a union of classes made at run time
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Annotated[_ONE_OF, Field(discriminator="type")])


_BY_TYPE: dict[str, type[Decoded]] = {t: m for t, m in zip(PAYLOADS, _MODELS, strict=True)}

#: events decoded lately, by their bytes: in one process (`commissioning serve`) the same bytes
#: are read by the gateway, their owner and each service reading the canonical stream (a need:
#: needs, procurement, savings), and decoding them was 8% of the samples at 8,000 contracts.
#: Payloads are frozen and never changed in place, so the services share them. Two generations,
#: each of at most `RECENT` events and `RECENT_BYTES` of their bytes: bounded whatever the
#: events' size, and nothing is scanned to forget the oldest. Under a backlog the gateway reads
#: far ahead of the canonical streams' readers: at 8,000 contracts (88,000 events) 4,096 events
#: a generation missed 52% of the lookups and 16,384 missed 2%, and the process was smaller
#: (what the readers fold is then one payload shared, not a copy each: resident 792-813 MiB
#: against 871-891; 32,768 a generation, 839-850).
RECENT = 16_384
RECENT_BYTES = 16 * 2**20
_recent: dict[bytes, Decoded] = {}
_older: dict[bytes, Decoded] = {}
_recent_bytes = 0


def decode(raw: bytes | str) -> Decoded:
    """The event in `raw`, typed; `ValidationError` when it is not one of the contract's."""
    if not isinstance(raw, bytes):
        return _ADAPTER.validate_json(raw)  # type: ignore[no-any-return]
    decoded = _recent.get(raw)
    if decoded is None:
        decoded = _older.get(raw)
        if decoded is None:
            decoded = _ADAPTER.validate_json(raw)
        _keep(raw, decoded)
    return decoded


def decode_once(raw: bytes | str) -> Decoded:
    """`decode` for bytes no other reader in this process will meet (a state read whole, a
    rebuild): not looked up among nor kept with the recent events (hashing and keeping each
    was about a third of decoding a state of 100,000 events)."""
    return _ADAPTER.validate_json(raw)  # type: ignore[no-any-return]


def remember(raw: bytes, event: CloudEvent, payload: Payload) -> None:
    """What the gateway validated (`event` and its typed `payload`, from exactly `raw`), so the
    services of this process that read those bytes next do not decode them again."""
    correlation = (event.model_extra or {}).get("correlationid")
    model = _BY_TYPE.get(event.type)
    if model is None or not (correlation is None or isinstance(correlation, str)):
        return  # decoded as it always was (a correlation id that is not a string is refused)
    _keep(
        raw,
        model.model_construct(
            id=event.id, source=event.source, correlationid=correlation, type=event.type, data=payload
        ),
    )


def _keep(raw: bytes, decoded: Decoded) -> None:
    global _recent, _older, _recent_bytes
    if len(_recent) >= RECENT or _recent_bytes + len(raw) > RECENT_BYTES:
        _older, _recent, _recent_bytes = _recent, {}, 0
    if len(raw) <= RECENT_BYTES:
        _recent[raw] = decoded
        _recent_bytes += len(raw)


__all__ = ["Decoded", "ValidationError", "decode", "decode_once", "remember"]
