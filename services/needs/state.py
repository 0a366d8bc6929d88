"""The needs service's state: the register (shared.state), the opportunities derived from it,
and their publication as `opportunity.identified` / `opportunity.updated` events."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from services.needs.model import Matched, NeedsPolicy, Register, category_of, check_request, evolve
from shared.authority import OwnerState
from shared.events import OpportunityIdentified
from shared.policy import SavingsPolicy
from shared.ports import Ports
from shared.state import Derived, Outbox, Published
from shared.streams import Streams

SOURCE = "/services/needs"
#: the canonical streams it reads: none (its own acts come as requests, P:requests:needs)
TYPES: tuple[str, ...] = ()
#: the acts it decides
OWNED = frozenset(
    {"need.identified", "need.updated", "need.withdrawn", "opportunity.joined", "opportunity.declined"}
)
log = structlog.get_logger("needs")
#: while needs keep arriving, opportunities are matched and published at most this often
DERIVE_EVERY_S = 1.0
#: and each category matched is followed by a pause this many times as long as it took
DERIVE_SHARE = 20.0


def _derived(payload: dict[str, Any]) -> Derived:
    return Derived("opportunity.identified", "opportunity.updated", payload, OpportunityIdentified)


def _closed(entity: str, before: dict[str, Any]) -> Derived | None:
    if before["payload"]["status"] == "closed":
        return None
    return _derived(
        {
            **before["payload"],
            "status": "closed",
            "reasons": ["The needs no longer match: withdrawn, changed, or no longer open to sharing."],
        }
    )


class NeedsState(OwnerState[Register]):
    def __init__(
        self, ports: Ports, streams: Streams, policy: NeedsPolicy, savings: SavingsPolicy, wait_s: float
    ) -> None:
        super().__init__(ports, streams, "needs", Register, evolve, OWNED, wait_s)
        self.policy, self.savings = policy, savings
        self.published = Published(ports.versions("opportunities"))
        self.outbox = Outbox(self.published, streams, SOURCE, _closed)
        #: an opportunity is matched again and published whole (every need in it): under load,
        #: a round at most once a second, paced a category at a time (`publish`), rather than
        #: after every batch (nothing waits on it: deciding runs apart, `EventSetState.decide`)
        self.min_interval, self.spacing = DERIVE_EVERY_S, 0.0
        self.matched = Matched(policy, savings)

    async def decide(self) -> int:
        return await self.decide_pending(
            lambda: lambda payload, key: check_request(self.index, self.policy, payload)
        )

    async def publish(self) -> None:
        """Match the categories the register's changes touched and publish what differs, one
        category at a time, outside the state's lock (`EventSetState.publish`: requests are
        decided meanwhile). A category's opportunity lists every need in it (tens of
        milliseconds at thousands of needs): while needs keep arriving, each category is
        followed by a pause `DERIVE_SHARE` times as long as it took, so this work never holds
        the process for more than one category at a time and takes at most a twentieth of it."""
        loop = asyncio.get_running_loop()
        reg = self.index
        whole = not self.matched.follows(reg)  # read whole: every opportunity looked at
        published = await self.published.all() if whole else {}
        visited: set[str] = set()
        for category in self.matched.touched(reg):
            if self.index is not reg:  # read whole meanwhile: matched again from the new one
                self._dirty = True
                return
            started = loop.time()
            scope = self.matched.refresh_category(reg, category)
            scope |= {oid for oid in published if category_of(oid) == category}
            visited.add(category)
            await asyncio.sleep(0)  # what waits meanwhile runs between matching and publishing
            await self._publish(scope)
            until = loop.time() + DERIVE_SHARE * (loop.time() - started)
            while (now := loop.time()) < until and not self._quiet(now):
                await asyncio.sleep(min(until - now, 0.05))
        # after a whole read, what was published of a category with no needs any more (and, in
        # any case, what an earlier publication left in the outbox)
        await self._publish({oid for oid in published if category_of(oid) not in visited})

    async def _publish(self, scope: set[str]) -> None:
        """Publish the opportunities in `scope` as matched now (closing those gone), and what
        an earlier publication left in the outbox."""
        current = {oid: _derived(self.opportunities[oid]) for oid in scope if oid in self.opportunities}
        self.outbox.put(current, scope)
        for oid in await self.outbox.flush():
            log.info("opportunity published", opportunity_id=oid)

    @property
    def opportunities(self) -> dict[str, dict[str, Any]]:
        return self.matched.opportunities
