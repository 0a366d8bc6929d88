"""Log lines carry the event being handled (README, Operations: `event_id`, `event_type`,
`correlation_id`), through the processors `configure_logging` sets up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


LEVELS = """
import asyncio, json, sys, tempfile
from pathlib import Path
from shared.logging import configure_logging

configure_logging("probe", sys.argv[1], "json")
from services.gateway.service import Gateway
from services.needs.model import NeedsPolicy
from services.needs.state import NeedsState
from shared.adapters.memory import MemoryStreams, memory_ports
from shared.bus import Entry
from shared.partners import PartnerRegistry
from shared.policy import SavingsPolicy
from shared.streams import Streams
from tests.handlers.test_owners_in_memory import send, settled
from tests.support import event, need_data, signed, write_partners

names = Streams("mem")
registry = PartnerRegistry.load(write_partners(Path(tempfile.mkdtemp()) / "partners.toml"))
gateway = Gateway(names, registry, 65_536)
good = {k.encode(): v for k, v in signed(event(need_data(need_id="g-1"), id="g1")).items()}
asyncio.run(gateway.handle(Entry(names.inbound, "1-0", good)))
asyncio.run(gateway.handle(Entry(names.inbound, "2-0", {**good, b"signature": b"0" * 64})))

async def owner() -> None:
    world = MemoryStreams(names)
    state = NeedsState(memory_ports(world), names, NeedsPolicy(), SavingsPolicy(), wait_s=0)
    await state.start()
    await send(state, world, 3, event(need_data(need_id="n-1"), id="n1"))
    ghost = {"need_id": "nothing", "partner_id": "lichfield-dc", "revision": 1}
    await send(state, world, 4, event(ghost, type="need.withdrawn", partner="lichfield-dc", id="w1"))
    await settled(state)
    await state.stop()

asyncio.run(owner())
"""


def _lines(level: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-c", LEVELS, level], cwd=ROOT, capture_output=True, text=True, check=True
    ).stderr
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] != "opportunity published"]


def test_an_accepted_event_is_a_debug_line_and_a_refusal_an_info_line() -> None:
    """README, Configuration: at INFO (the default) no line is written for each accepted event
    (`inbound verified` at the gateway, `decided ... accepted` at its owner: 15-25% of the
    throughput), while a rejection and a refusal still are; DEBUG writes both."""
    at_info = [(line["event"], line.get("verdict") or line.get("code")) for line in _lines("INFO")]
    assert ("inbound rejected", "bad_signature") in at_info
    assert ("decided", "refused:unknown_need") in at_info
    assert not [e for e in at_info if e[0] == "inbound verified" or e == ("decided", "accepted")], at_info
    at_debug = {(line["event"], line.get("verdict")) for line in _lines("DEBUG")}
    assert {("inbound verified", None), ("decided", "accepted")} <= at_debug
