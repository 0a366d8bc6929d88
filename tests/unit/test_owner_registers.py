"""The owners' registers keep no set of every event they folded (their memory follows the
contracts and partners, not the events): folding an event again must change nothing, whatever
the order, or a redelivered event would count twice."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from services.contracts import model as contracts
from services.needs import model as needs
from services.procurement import model as procurement
from shared.decode import decode
from tests.eventgen import history
from tests.support import event

PARTNERS = ["staffordshire-cc", "tamworth-bc", "lichfield-dc", "cannock-chase-dc"]


def tender(n: int, pid: str) -> tuple[str, str, dict[str, Any]]:
    return (pid, "tender.requested", {
        "tender_id": f"tender-{n}", "partner_id": pid, "opportunity_id": "advocacy-2012-03",
        "title": "Advocacy", "service_category": "advocacy", "estimated_annual_value": "60000.00",
        "term_months": 36, "partners": [{"partner_id": pid, "need_id": f"{pid}-advocacy"}],
        "date": "2012-01-02", "clarification_deadline": "2012-01-09", "closing_date": "2012-01-16",
        "contract_start": "2012-04-01", "weighting": {"price": "40", "quality": "50", "social_value": "10"},
    })  # fmt: skip


def folded_events(seed: int) -> list[tuple[str, Any]]:
    out = []
    acts = history(seed, PARTNERS, contracts=6) + [tender(seed, pid) for pid in PARTNERS[:2]]
    for n, (pid, etype, data) in enumerate(acts):
        decoded = decode(json.dumps(event(data, type=etype, partner=pid, id=f"e{n}")).encode())
        out.append((decoded.key, decoded.payload()))
    return out


def fold_all(register: Any, evolve: Callable[..., Any], evs: list[tuple[str, Any]]) -> Any:
    for key, payload in evs:
        try:
            evolve(register, key, payload)
        except (TypeError, AttributeError):  # not an event this register folds
            continue
    register.touched = set() if hasattr(register, "touched") else None
    return register


@pytest.mark.parametrize(
    "register, evolve",
    [
        (needs.Register, needs.evolve),
        (procurement.Register, procurement.evolve),
        (contracts.Register, contracts.evolve),
    ],
    ids=["needs", "procurement", "contracts"],
)
@pytest.mark.parametrize("seed", range(8))
def test_folding_every_event_again_in_another_order_changes_nothing(
    register: Callable[[], Any], evolve: Callable[..., Any], seed: int
) -> None:
    evs = folded_events(seed)
    once = fold_all(register(), evolve, evs)
    again = copy.deepcopy(once)
    fold_all(again, evolve, random.Random(seed).sample(evs, len(evs)))
    assert again == once
    assert not hasattr(once, "applied"), "no per-event set"
