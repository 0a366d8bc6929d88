"""Log lines carry the event being handled (README, Operations: `event_id`, `event_type`,
`correlation_id`), through the processors `configure_logging` sets up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json
import structlog
from shared.bus.consumer import Entry, event_subscription
from shared.logging import configure_logging
from tests.support import event, need_data

configure_logging("probe", "INFO", "json")
log = structlog.get_logger("probe")

async def handle(event, entry):
    log.info("inside")
    return []

sub = event_subscription("probe", "s", handle)
raw = json.dumps(event(need_data(), id="n-1", correlationid="c-9")).encode()
asyncio.run(sub.handle(Entry("s", "1-0", {b"event": raw})))
log.info("after")
"""


def test_a_line_logged_while_an_event_is_handled_names_it_and_only_then() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
    ).stderr
    inside, after = (json.loads(line) for line in out.strip().splitlines()[-2:])
    assert inside["event"] == "inside" and inside["service"] == "probe"
    assert (inside["event_id"], inside["event_type"], inside["correlation_id"]) == (
        "n-1",
        "need.identified",
        "c-9",
    )
    assert after["event"] == "after" and "event_id" not in after and "event_type" not in after
