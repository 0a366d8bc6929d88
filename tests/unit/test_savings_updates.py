"""`savings.updated` as changes: the summary complete, only the contracts whose figures changed,
and an update's size independent of the number of contracts (the pure part, `changes`)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.savings.model import Facts, evolve, project
from services.savings.projection import next_update
from services.savings.running import Running
from services.savings.updates import ROW_FIELDS, ROWS_PER_ENTRY, SUMMARY_KEYS, LastPublished, changes, record
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from tests.eventgen import history

PARTNERS = [f"partner-{i}" for i in range(6)]
HISTORY_PARTNERS = ["staffordshire-cc", "tamworth-bc", "lichfield-dc", "cannock-chase-dc"]


def add(facts: Facts, etype: str, data: dict[str, Any], key: str) -> None:
    evolve(facts, key, PAYLOADS[etype].model_validate(data))


def portfolio(contracts: int) -> Facts:
    """`contracts` contracts, each over two partners' needs, all starting on 1 April 2013."""
    facts = Facts()
    for i in range(contracts):
        pair = [PARTNERS[i % 6], PARTNERS[(i + 1) % 6]]
        for pid in pair:
            add(
                facts,
                "need.identified",
                {
                    "need_id": f"need-{i}",
                    "partner_id": pid,
                    "service_category": "advice",
                    "title": "Advice",
                    "annual_budget": "90000.00",
                    "current_arrangements": 2,
                    "current_annual_resource_cost": f"{40000 + i}.00",
                    "current_arrangements_end": "2013-03-31",
                    "open_to_sharing": True,
                },
                f"/partners/{pid} n-{i}",
            )
        add(
            facts,
            "tender.awarded",
            {
                "tender_id": f"t-{i}",
                "contract_id": f"c-{i:05d}",
                "lead_partner_id": pair[0],
                "commissioning_model": "aligned_budgets",
                "supplier": {"id": "s", "name": "S"},
                "annual_value": "60000.00",
                "contract_start": "2013-04-01",
                "contract_end": "2016-03-31",
                "partners": [{"partner_id": p, "need_id": f"need-{i}"} for p in pair],
            },
            f"/partners/{pair[0]} a-{i}",
        )
    return facts


def decommission(facts: Facts, i: int) -> None:
    pid = PARTNERS[i % 6]
    add(
        facts,
        "contract.decommissioned",
        {
            "contract_id": f"c-{i:05d}",
            "partner_id": pid,
            "effective_date": "2013-04-01",
            "reason": "financial_constraints",
            "replacement": "separate_arrangements",
        },
        f"/partners/{pid} d-{i}",
    )


def published(facts: Facts, cache: dict[Any, Any]) -> tuple[LastPublished, dict[str, Any]]:
    figures = project(facts, SavingsPolicy(), cache)
    last = LastPublished()
    first = changes(last, figures)
    assert first is not None
    record(last, first, "1-0")
    return last, figures


def test_the_first_update_carries_every_contract_then_only_those_that_changed() -> None:
    facts, cache = portfolio(300), {}
    last, figures = published(facts, cache)
    assert len(last.rows) == 300 and last.entry_id == "1-0"
    assert changes(last, project(facts, SavingsPolicy(), cache)) is None, (
        "nothing changed, nothing to publish"
    )

    decommission(facts, 7)
    after = project(facts, SavingsPolicy(), cache)
    update = changes(last, after)
    assert update is not None
    assert [c["contract_id"] for c in update.data["contracts"]] == ["c-00007"]
    row = update.data["contracts"][0]
    assert tuple(row) == ROW_FIELDS and row["status"] == "decommissioned"
    for key in SUMMARY_KEYS:  # the summary complete, as GET /savings has it
        assert update.data[key] == after[key]
    assert after["portfolio"] != figures["portfolio"]
    assert len(update.data["partners"]) == len(PARTNERS)
    assert "contracts_removed" not in update.data


def test_rows_are_compared_by_value_not_by_the_objects_they_came_from() -> None:
    facts = portfolio(20)
    last, _ = published(facts, {})
    fresh = project(facts, SavingsPolicy())  # no cache: every row a new object, equal values
    assert changes(last, fresh) is None
    assert all(last.sources[c["contract_id"]] is c for c in fresh["contracts"])


def test_a_contract_that_is_gone_is_listed_as_removed() -> None:
    last, _ = published(portfolio(5), {})
    update = changes(last, project(portfolio(4), SavingsPolicy()))
    assert update is not None and update.data["contracts_removed"] == ["c-00004"]
    record(last, update, "2-0")
    assert "c-00004" not in last.rows


def test_an_empty_projection_with_nothing_published_needs_no_update() -> None:
    assert changes(LastPublished(), project(Facts(), SavingsPolicy())) is None


def test_an_update_is_the_same_size_whatever_the_number_of_contracts() -> None:
    sizes = []
    for n in (100, 2000):
        facts, cache = portfolio(n), {}
        last, _ = published(facts, cache)
        decommission(facts, 3)
        update = changes(last, project(facts, SavingsPolicy(), cache))
        assert update is not None and len(update.data["contracts"]) == 1
        sizes.append(len(json.dumps(update.data)))
    assert abs(sizes[1] - sizes[0]) < 100, sizes  # only the digits of the totals differ


def test_many_contracts_changed_together_are_written_as_entries_of_bounded_size() -> None:
    update = changes(LastPublished(), project(portfolio(ROWS_PER_ENTRY * 2 + 5), SavingsPolicy()))
    assert update is not None
    entries = update.entries()
    assert [len(e["contracts"]) for e in entries] == [ROWS_PER_ENTRY, ROWS_PER_ENTRY, 5]
    assert all(e["portfolio"] == update.data["portfolio"] for e in entries)
    assert [c for e in entries for c in e["contracts"]] == update.data["contracts"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.randoms(use_true_random=False), batches=st.integers(1, 12))
def test_updates_of_only_the_recomputed_contracts_bring_a_dashboard_to_the_whole_figures(
    seed: int, order: random.Random, batches: int
) -> None:
    """The projection compares with what was last published only the contracts a recompute
    touched (`next_update`): a dashboard applying every update, from nothing, ends with the
    same summary and rows as the whole document, whatever the batches and their order."""
    events = [
        (f"/partners/{pid} ev-{seed}-{n}", PAYLOADS[t].model_validate(d))
        for n, (pid, t, d) in enumerate(history(seed, HISTORY_PARTNERS, contracts=6))
    ]
    order.shuffle(events)
    running, facts = Running(SavingsPolicy()), Facts(applied=None)
    last, shown, summary = LastPublished(), {}, None
    cuts = sorted(order.sample(range(len(events) + 1), min(batches, len(events) + 1)))
    for n, (a, b) in enumerate(itertools.pairwise([0, *cuts, len(events)])):
        for key, payload in events[a:b]:
            running.fold(facts, key, payload)
        now = {**running.summary(facts), "events_applied": b}
        update = next_update(last, running, now, n == 0)
        if update is None:
            continue
        record(last, update, f"{n}-0")
        for entry in update.entries():  # what a dashboard does with each entry
            summary = {k: entry[k] for k in SUMMARY_KEYS}
            shown.update({row["contract_id"]: row for row in entry["contracts"]})
            for cid in entry.get("contracts_removed", ()):
                shown.pop(cid, None)
    whole = running.figures(facts)
    assert summary == {
        **{k: whole[k] for k in SUMMARY_KEYS if k != "events_applied"},
        "events_applied": len(events),
    }
    assert shown == {row["contract_id"]: {k: row[k] for k in ROW_FIELDS} for row in whole["contracts"]}


def test_a_rebuild_puts_the_tables_together_only_when_the_rest_is_as_before() -> None:
    """`rebuild.same_figures`: figures that differ outside the tables are told apart without
    the tables; the same figures are compared whole (a row may differ with the totals the same)."""
    from services.savings.rebuild import same_figures

    asked: list[int] = []

    def document(doc: dict[str, Any]) -> Any:
        return lambda: asked.append(1) or doc

    summary = {"portfolio": {"annual_saving": "10.00"}, "events_applied": 3}
    whole = {**summary, "contracts": [{"contract_id": "c-1"}]}
    assert not same_figures({}, summary, document(whole)) and asked == []  # a fresh projection
    other = {**whole, "portfolio": {"annual_saving": "9.00"}}
    assert not same_figures(other, summary, document(whole)) and asked == []
    assert same_figures(whole, summary, document(whole)) and asked == [1]
    row = {**whole, "contracts": [{"contract_id": "c-2"}]}
    assert not same_figures(row, summary, document(whole)) and asked == [1, 1]
