"""The incremental figures (`Running`) equal `model.project` exactly, after every step of
any history, in any order, with duplicates, need revisions, returns, decommissionings,
investments (tests/eventgen.py makes them) and contracts replacing the same needs."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.savings.model import Facts, _key, _phases, evolve, project
from services.savings.running import Running
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from tests.eventgen import history
from tests.unit.test_savings_updates import decommission, portfolio

POLICY = SavingsPolicy()
PARTNERS = ["a-cc", "b-dc", "c-pct", "d-police", "e-fire"]


def _later_by_a_year(iso: str) -> str:
    return f"{int(iso[:4]) + 1}{iso[4:]}" if not iso.endswith("02-29") else f"{int(iso[:4]) + 1}-03-01"


def events(seeds: list[int]) -> list[tuple[str, Any]]:
    """The histories, with a restatement of every third need (a later revision, another cost) and
a member leaving every other contract a year into it."""
    out = []
    for seed in seeds:
        for n, (pid, t, d) in enumerate(history(seed, PARTNERS)):
            out.append((f"/partners/{pid} ev-{seed}-{n}", PAYLOADS[t].model_validate(d)))
            if t == "tender.awarded" and n % 2 == 0 and len(d["partners"]) > 1:  # a member leaves
                member = next(x["partner_id"] for x in d["partners"]
                              if x["partner_id"] != d["lead_partner_id"])
                exited = PAYLOADS["contract.member.exited"].model_validate({
                    "contract_id": d["contract_id"], "partner_id": member, "notice_date": d["contract_start"],
                    "effective_date": _later_by_a_year(d["contract_start"]), "reason": "provider_unable"})
                out.append((f"/partners/{member} ev-{seed}-{n}-x", exited))
            if t == "tender.awarded" and n % 5 == 0:  # a second contract over the same needs
                rival = {**d, "contract_id": f"{d['contract_id']}-b", "tender_id": f"{d['tender_id']}-b"}
                out.append((f"/partners/{d['lead_partner_id']} ev-{seed}-{n}-b",
                            PAYLOADS["tender.awarded"].model_validate(rival)))
            if t == "need.identified" and n % 3 == 0:
                cost = f"{Decimal(d['current_annual_resource_cost']) + 1000:.2f}"
                restated = {**d, "revision": 1, "current_annual_resource_cost": cost}
                again = PAYLOADS["need.updated"].model_validate(restated)
                out.append((f"/partners/{pid} ev-{seed}-{n}-r1", again))
    return out


@settings(max_examples=40, deadline=None)
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=3),
       order=st.randoms(use_true_random=False), dupes=st.integers(0, 20), step=st.integers(1, 7))
def test_after_every_step_the_running_figures_are_the_projection(seeds: list[int], order: random.Random,
                                                                 dupes: int, step: int) -> None:
    todo = events(seeds)
    todo += [order.choice(todo) for _ in range(dupes)]
    order.shuffle(todo)
    running, facts = Running(POLICY), Facts()
    assert running.figures(facts) == project(facts, POLICY)
    for n, (key, payload) in enumerate(todo, 1):
        running.fold(facts, key, payload)
        if n % step == 0 or n == len(todo):
            assert running.figures(facts) == project(facts, POLICY), f"after {n} of {len(todo)} events"


def test_one_decommissioning_among_many_contracts_recomputes_one_contract() -> None:
    facts, running = portfolio(200), Running(POLICY)
    running.figures(facts)
    before = dict(running._contracts)
    ended = Facts()
    decommission(ended, 7)
    running.fold(facts, "/partners/x d-7", ended.decommissions["c-00007"].payload)
    assert running.figures(facts) == project(facts, POLICY)
    assert [cid for cid, c in running._contracts.items() if before[cid] is not c] == ["c-00007"]


def test_a_new_index_is_taken_whole() -> None:
    running = Running(POLICY)
    running.figures(portfolio(5))
    other = portfolio(8)
    assert running.figures(other) == project(other, POLICY)


def test_the_business_date_and_the_start_follow_a_fact_replaced_in_its_slot() -> None:
    """`as_of` and the programme start are kept as events are folded, not read from every fact
    at each recompute: a fact that replaces the one holding the latest date (or the earliest
    start) moves them back."""
    facts, running = portfolio(3), Running(POLICY)
    assert running.figures(facts) == project(facts, POLICY)
    award = facts.awards["c-00001"].payload
    for key, start in (
        ("a-2", "2016-04-01"),
        ("a-3", "2014-04-01"),
        ("a-4", "2012-04-01"),
        ("a-5", "2013-10-01"),
    ):
        moved = award.model_copy(update={"contract_start": date.fromisoformat(start)})
        running.fold(facts, f"/partners/x {key}", moved)  # a larger key: it takes the slot
        assert facts.awards["c-00001"].payload.contract_start == date.fromisoformat(start)
        assert running.figures(facts) == project(facts, POLICY), f"contract 1 starting {start}"
    ended = Facts()
    decommission(ended, 2)
    late = ended.decommissions["c-00002"].payload.model_copy(update={"effective_date": date(2019, 1, 1)})
    running.fold(facts, "/partners/x d-late", late)
    assert running.figures(facts) == project(facts, POLICY)
    running.fold(facts, "/partners/x d-2", ended.decommissions["c-00002"].payload)  # the earlier stands
    assert running.figures(facts) == project(facts, POLICY)


def test_a_partners_row_is_written_again_when_its_figures_move_and_a_reader_cannot_change_it() -> None:
    """Partners' rows are kept as last written (`Running._partner_row`): a row whose figures
    moved is new, one whose figures did not is the same text, and changing a document a
    reader was given changes nothing in the next one."""
    facts, running = portfolio(6), Running(POLICY)
    first = running.figures(facts)
    assert first == project(facts, POLICY)
    for row in first["partners"]:
        row["annual_saving"] = "tampered"
    for _ in range(2):  # nothing folded since: the document as last put together, twice
        again = running.figures(facts)
        assert again == project(facts, POLICY), "a reader's changes are not in the next document"
        again["portfolio"]["annual_saving"] = again["years"][0]["saving"] = "tampered"
        again["partners"][0]["annual_saving"] = "tampered"
    ended = Facts()
    decommission(ended, 3)
    running.fold(facts, "/partners/x d-3", ended.decommissions["c-00003"].payload)
    second = running.figures(facts)
    assert second == project(facts, POLICY)
    assert second["partners"] != project(portfolio(6), POLICY)["partners"], "some partner's figures moved"
    assert all(r["annual_saving"] != "tampered" for r in second["partners"])


class _EveryExit(dict):  # type: ignore[type-arg]
    """The portfolio's exits, refusing to be walked: a contract's figures read its own only."""

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("every exit of the portfolio walked for one contract")

    values = keys = __iter__ = items


def test_a_contracts_figures_read_its_own_exits_not_every_exit() -> None:
    """Exits are kept by contract as well as by slot (`Facts.exits_of`), in any order of
    arrival: a contract's key and phases look up its own (walking every exit for each contract
    made a full recompute quadratic in contracts and exits)."""
    todo = events([3, 11, 42])
    assert any(p.type == "contract.member.exited" for _, p in todo)
    for order in range(3):
        random.Random(order).shuffle(todo)
        facts = Facts()
        for key, payload in todo:
            evolve(facts, key, payload)
        by_contract: dict[str, dict[str, Any]] = {}
        for (cid, pid), fact in facts.exits.items():
            by_contract.setdefault(cid, {})[pid] = fact
        assert facts.exits_of == by_contract
    today, buckets = Running(POLICY).frame_of(facts)[0]
    expected = {cid: (_key(f, facts, today, buckets, POLICY), _phases(f.payload, facts, POLICY, date(2030, 1, 1)))
                for cid, f in facts.awards.items()}
    facts.exits = _EveryExit(facts.exits)
    for cid, f in facts.awards.items():
        assert (_key(f, facts, today, buckets, POLICY), _phases(f.payload, facts, POLICY, date(2030, 1, 1))) == expected[cid]
