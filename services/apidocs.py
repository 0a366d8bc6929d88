"""The documented APIs: the event API's AsyncAPI 3 document FastStream generates from the built
app, the JSON Schema of every payload (services.docs), and the HTTP API's OpenAPI document
FastAPI generates from the same app. `commissioning docs --write` writes them under docs/;
tests/unit/test_api_docs.py fails when the code and the checked-in documents disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.docs import DOCS, schemas
from services.runtime import SERVICES, App, build_app
from shared.partners import Partner, PartnerRegistry
from shared.settings import Settings


def _app() -> App:
    registry = PartnerRegistry([Partner(id="example", name="Example", secret="-")])
    settings = Settings(redis_url="redis://localhost:6379/0")
    app, _, _ = build_app(list(SERVICES), settings, registry, consumer="{consumer}")
    return app


def asyncapi() -> dict[str, Any]:
    return _app().schema.to_specification().to_jsonable()  # type: ignore[no-any-return]


def openapi() -> dict[str, Any]:
    return _app().openapi()


def documents() -> dict[Path, str]:
    docs = {DOCS / "asyncapi.json": _dump(asyncapi()), DOCS / "openapi.json": _dump(openapi())}
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
