"""Ports: what the services' logic needs from the outside world, as Protocols. Adapters
(shared.adapters) implement them on Redis and in memory; one contract test suite
(tests/contract/) runs on both, so the two keep the same behaviour.

A port speaks the commissioners' terms (a request held for its owner's decision, a decision
recorded and published), never Redis commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.authority import Refused


@dataclass(frozen=True)
class Decision:
    """An owner's decision on one partner's request: accepted (claiming `claims`, the slots
    only one accepted request may hold, e.g. one return per period and partner) or refused."""

    key: str  # the request's `source id`
    type: str  # its event type: an accepted request is published on `P:<type>`
    partner: str  # who sent it: a refused request is published on `P:rejected:<partner>`
    claims: tuple[str, ...] = ()
    refused: Refused | None = None

    @property
    def verdict(self) -> str:
        return "accepted" if self.refused is None else f"refused:{self.refused.code}"


class DecisionLog(Protocol):
    """Where an owner's requests wait and its decisions are recorded and published, each once."""

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        """Keep a request (its original bytes and where it arrived) until it is decided."""

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        """Record and publish `decisions` in order, as one step. Returns, for each decision
        handled, the verdict that stands: its own when recorded as asked (or already recorded
        the same way); another replica's (`accepted`, `refused:<code>`); `missing` (the request
        is no longer held); `conflict:<slot>` (another accepted request holds a slot). It stops
        after the first that did not stand as asked: the rest were judged on what the caller
        assumed about that one, and are decided again."""

    async def verdicts(self) -> dict[str, str]:
        """Every recorded verdict, by request key (read at start-up)."""
