"""What the event API documents say: each subscription's and publication's schema, declared on
the router (`declare`), and the JSON Schema of every payload (`schemas`). services.apidocs
writes the documents from a built app; the runtime imports this module, never that one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from faststream.redis import RedisRouter
from pydantic import BaseModel, create_model

from shared.events import PAYLOADS, CloudEvent, SavingsUpdatedData
from shared.streams import Streams

DOCS = Path(__file__).resolve().parent.parent / "docs"


def envelope(event_type: str, data: type[BaseModel]) -> type[CloudEvent]:
    """A CloudEvent whose `type` and `data` are those of one event type, for documentation."""
    name = "".join(part.capitalize() for part in event_type.replace("-", ".").split(".")) + "Event"
    return create_model(  # type: ignore[call-overload, no-any-return]
        name,
        __base__=CloudEvent,
        type=(Literal[event_type], ...),  # type: ignore[valid-type]
        data=(data, ...),
    )


class Rejection(BaseModel):
    """An entry of P:rejected:<partner>."""

    event: str
    reason: str  # JSON: {"code", "message", "errors"}
    inbound_id: str


class DeadLetter(BaseModel):
    """An entry of P:dead-letter: the original fields plus where it came from and why."""

    event: str | None = None
    stream: str
    entry_id: str
    group: str
    deliveries: str
    error: str  # JSON: {"code", "message", ...}


def declare(router: RedisRouter, streams: Streams) -> None:
    """Declare, for the document, the streams the services write through the bus."""
    for event_type, model in PAYLOADS.items():
        router.publisher(
            stream=streams.of_type(event_type),
            title=f"{event_type}:publish",
            description=f"Accepted {event_type} events (field `event`: the CloudEvent JSON).",
            schema=envelope(event_type, model),
        )
    router.publisher(
        stream=streams.savings_updated,
        title="savings.updated:publish",
        description="The savings projection after each change (dashboards).",
        schema=envelope("savings.updated", SavingsUpdatedData),
    )
    router.publisher(
        stream=streams.rejected("{partner}"),
        title="rejected:publish",
        description="Inbound entries not accepted, with a machine-readable reason; one stream per partner, "
        "`unknown` when the partner cannot be determined.",
        schema=Rejection,
    )
    router.publisher(
        stream=streams.dead_letter,
        title="dead-letter:publish",
        description="Accepted events that failed processing repeatedly, with their error.",
        schema=DeadLetter,
    )


def schemas() -> dict[str, dict[str, Any]]:
    out = {t: envelope(t, m).model_json_schema() for t, m in PAYLOADS.items()}
    out["savings.updated"] = envelope("savings.updated", SavingsUpdatedData).model_json_schema()
    return out
