"""The documented event API: the AsyncAPI 3 document FastStream generates from the code, and
the JSON Schema of every payload. `commissioning docs --write` writes them under docs/;
tests/unit/test_api_docs.py fails when the code and the checked-in documents disagree."""

from __future__ import annotations

import json
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
        description="Inbound entries not accepted, with a machine-readable reason; one stream per partner, `unknown` when the partner cannot be determined.",
        schema=Rejection,
    )
    router.publisher(
        stream=streams.dead_letter,
        title="dead-letter:publish",
        description="Accepted events that failed processing repeatedly, with their error.",
        schema=DeadLetter,
    )


def asyncapi() -> dict[str, Any]:
    from services.runtime import SERVICES, build_app
    from shared.partners import Partner, PartnerRegistry
    from shared.settings import Settings

    registry = PartnerRegistry([Partner(id="example", name="Example", secret="-")])
    settings = Settings(redis_url="redis://localhost:6379/0")
    app, _, _ = build_app(list(SERVICES), settings, registry, consumer="{consumer}")
    return app.schema.to_specification().to_jsonable()  # type: ignore[no-any-return]


def schemas() -> dict[str, dict[str, Any]]:
    out = {t: envelope(t, m).model_json_schema() for t, m in PAYLOADS.items()}
    out["savings.updated"] = envelope("savings.updated", SavingsUpdatedData).model_json_schema()
    return out


def documents() -> dict[Path, str]:
    docs = {DOCS / "asyncapi.json": _dump(asyncapi())}
    for name, schema in schemas().items():
        docs[DOCS / "schemas" / f"{name}.json"] = _dump(schema)
    return docs


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write() -> list[Path]:
    written = []
    for path, text in documents().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale() -> list[Path]:
    return [p for p, text in documents().items() if not p.exists() or p.read_text(encoding="utf-8") != text]
