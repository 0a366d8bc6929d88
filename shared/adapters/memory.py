"""The ports in memory: the same behaviour as the Redis adapters (tests/contract/ runs one
suite on both), for handler tests and tools that need no Redis."""

from __future__ import annotations

import json
from collections.abc import Sequence

from shared.ports import Decision
from shared.streams import Streams


class MemoryDecisionLog:
    """shared.ports.DecisionLog in dicts; published entries are kept in `streams`."""

    def __init__(self, streams: Streams | None = None) -> None:
        self.names = streams or Streams()
        self.requests: dict[str, bytes] = {}
        self.arrived: dict[str, str] = {}
        self.decisions: dict[str, str] = {}
        self.claims: dict[str, str] = {}
        #: stream name -> entries published on it, in order
        self.streams: dict[str, list[dict[str, bytes | str]]] = {}

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        self.requests[key] = raw
        self.arrived[key] = f"{request_id} {inbound_id}"

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        out: list[str] = []
        for d in decisions:
            done = self.decisions.get(d.key)
            if done is not None:
                if done.startswith("refused:"):
                    self.requests.pop(d.key, None)
                    self.arrived.pop(d.key, None)
                out.append(done)
                if done != d.verdict:
                    return out
                continue
            raw = self.requests.get(d.key)
            if raw is None:
                out.append("missing")
                return out
            held = next((s for s in d.claims if self.claims.get(s, d.key) != d.key), None)
            if held is not None:
                out.append(f"conflict:{held}")
                return out
            self.claims.update(dict.fromkeys(d.claims, d.key))
            self.decisions[d.key] = d.verdict
            inbound = self.arrived.pop(d.key, "").partition(" ")[2]
            if d.refused is None:
                self.streams.setdefault(self.names.accepted(d.type), []).append({"event": raw})
            else:
                reason = json.dumps(d.refused.reason(), separators=(",", ":"))
                self.streams.setdefault(self.names.rejected(d.partner), []).append(
                    {"event": raw, "reason": reason, "inbound_id": inbound})
                del self.requests[d.key]
            out.append(d.verdict)
        return out

    async def verdicts(self) -> dict[str, str]:
        return dict(self.decisions)

    async def arrivals(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: self.arrived[k] for k in keys if k in self.arrived}
