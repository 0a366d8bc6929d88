"""Validate once: the gateway validates a partner's event against the contract; what the
services read afterwards (`P:<type>`, `P:requests:<owner>`, their own state) was written by the
project itself, so it is decoded in one pass from the raw bytes (pydantic's
`model_validate_json` on a union keyed by `type`) into the typed payload, without checking
the envelope again. The payload models still build their types (Decimal money, dates) as the
contract defines them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from shared.events import PAYLOADS, Payload


class Decoded(BaseModel):
    """An event read from the project's own streams: the envelope's identifiers and the
    typed payload (what handlers use of a `CloudEvent`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    source: str
    correlationid: str | None = None
    data: Any

    @property
    def key(self) -> str:
        return f"{self.source} {self.id}"

    @property
    def correlation_id(self) -> str:
        return self.correlationid or self.id

    def payload(self) -> Payload:
        return self.data  # type: ignore[no-any-return]


def _model(event_type: str, payload: type[Payload]) -> type[Decoded]:
    name = "Decoded_" + "".join(part.title() for part in event_type.replace(".", "_").split("_"))
    return create_model(name, __base__=Decoded, type=(Literal[event_type], ...), data=(payload, ...))  # type: ignore[call-overload,no-any-return]


_MODELS = tuple(_model(t, p) for t, p in PAYLOADS.items())
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Annotated[Union[_MODELS], Field(discriminator="type")])  # type: ignore[valid-type]  # noqa: UP007


def decode(raw: bytes | str) -> Decoded:
    """The event in `raw`, typed; `ValidationError` when it is not one of the contract's."""
    return _ADAPTER.validate_json(raw)  # type: ignore[no-any-return]


__all__ = ["Decoded", "ValidationError", "decode"]
