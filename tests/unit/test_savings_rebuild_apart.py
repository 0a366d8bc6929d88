"""A rebuild computes the contracts' figures in several processes (`rebuild.figures_apart`: forks
of the one holding the index) and the recompute takes them (`Running.ahead`) unless something
they depend on was folded since: the figures are exactly `model.project`'s either way."""

from __future__ import annotations

import argparse
import io
import os
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.savings import model, rebuild, snapshot
from services.savings.model import Facts, project
from services.savings.running import Running
from shared.policy import SavingsPolicy
from tests.unit.test_savings_running import events
from tests.unit.test_savings_updates import decommission, portfolio

POLICY = SavingsPolicy()


@pytest.fixture(autouse=True)
def _apart_from_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "APART_FROM", 0)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The contracts whose figures this process computes from now on."""
    computed: list[str] = []
    original = model._figures

    def counting(fact: Any, *args: Any, **kwargs: Any) -> Any:
        computed.append(fact.payload.contract_id)
        return original(fact, *args, **kwargs)

    monkeypatch.setattr(model, "_figures", counting)
    return computed


@settings(max_examples=25, deadline=None)
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=3),
       order=st.randoms(use_true_random=False), cut=st.floats(0, 1), workers=st.integers(1, 3))
def test_figures_computed_apart_then_given_the_rest_of_the_events_are_the_projection(
    seeds: list[int], order: random.Random, cut: float, workers: int
) -> None:
    todo = events(seeds)
    order.shuffle(todo)
    head, tail = todo[: int(cut * len(todo))], todo[int(cut * len(todo)) :]
    running, facts = Running(POLICY), Facts(applied=None)
    for key, payload in head:  # into an index of its own, as a rebuild folds
        running.fold(facts, key, payload)
    shown = io.StringIO()
    ahead, totals, pieces = rebuild.figures_apart(running, facts, workers, shown)
    assert sorted(ahead) == sorted(pieces) == (sorted(facts.awards) if workers > 1 else [])
    assert len(totals) == (workers if workers > 1 else 0), "each share's totals"
    for cid, (c, *encoded) in pieces.items():  # each contract's pieces, of its very figures
        assert c is ahead[cid] and tuple(encoded) == snapshot.pieces_of(c)
    if workers > 1:  # progress, as long work shows it
        assert f"rebuild: contracts' figures computed: {len(ahead)}/{len(ahead)} (100%" in shown.getvalue()
    running.ahead(ahead, facts, totals)
    for key, payload in tail:  # what the catch-up brings
        running.fold(facts, key, payload)
    assert running.figures(facts) == project(facts, POLICY)


def test_the_recompute_takes_the_figures_computed_apart_but_those_folded_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    facts, running = portfolio(40), Running(POLICY)
    ahead, totals, _ = rebuild.figures_apart(running, facts, 2, io.StringIO())
    running.ahead(ahead, facts, totals)
    ended = Facts()
    decommission(ended, 7)
    running.fold(facts, "/partners/x d-7", ended.decommissions["c-00007"].payload)
    computed = _counting(monkeypatch)
    view = running.figures(facts)
    assert computed == ["c-00007"]
    assert view == project(facts, POLICY)


@pytest.mark.parametrize("folded_since", [False, True])
def test_each_shares_totals_added_at_once_give_what_adding_each_contract_gives(folded_since: bool) -> None:
    """The totals of each share (`Running.totals_of`) stand for adding each contract's part:
    the same figures and the same snapshot, byte for byte, also when a contract's figures are
    not taken (an event folded since) and its part is taken away again."""
    facts, alone, apart = portfolio(40), Running(POLICY), Running(POLICY)
    ahead, totals, pieces = rebuild.figures_apart(apart, facts, 3, io.StringIO())
    assert len(totals) == 3
    apart.ahead(ahead, facts, totals)
    if folded_since:
        ended = Facts()
        decommission(ended, 7)
        apart.fold(facts, "/partners/x d-7", ended.decommissions["c-00007"].payload)  # alone reads it whole
    assert apart.figures(facts) == alone.figures(facts) == project(facts, POLICY)
    whole = snapshot.dump(alone, facts, POLICY)
    assert snapshot.dump(apart, facts, POLICY) == whole
    captured = snapshot.capture(apart, facts, POLICY, pieces=pieces)  # folded since: c-00007 encoded anew
    assert snapshot.encode(captured) == whole, "the same bytes, the pieces written as they came"


def test_a_worker_that_fails_leaves_its_contracts_to_the_recompute(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    facts, running = portfolio(40), Running(POLICY)

    def failing(*args: Any) -> None:  # what each worker runs
        raise RuntimeError("a worker fails")

    monkeypatch.setattr(rebuild, "_figures_of", failing)
    ahead, totals, _ = rebuild.figures_apart(running, facts, 2, io.StringIO())
    assert sorted(ahead) == sorted(facts.awards)[0::2], "this process's share, not the worker's"
    assert len(totals) == 1, "this process's share's totals alone"
    assert "RuntimeError: a worker fails" in capfd.readouterr().err, "the worker says why"
    running.ahead(ahead, facts, totals)
    computed = _counting(monkeypatch)
    view = running.figures(facts)
    assert computed == sorted(facts.awards)[1::2]
    assert view == project(facts, POLICY)


def test_the_workers_follow_the_cores_it_may_use_and_a_cpu_quota(tmp_path: Any) -> None:
    cores = min(len(os.sched_getaffinity(0)), 4)
    cpu_max = tmp_path / "cpu.max"
    assert rebuild.default_workers(tmp_path / "none") == cores  # no cgroup v2 limit
    cpu_max.write_text("max 100000\n")
    assert rebuild.default_workers(cpu_max) == cores
    cpu_max.write_text("150000 100000\n")  # --cpus 1.5: one whole core
    assert rebuild.default_workers(cpu_max) == 1
    cpu_max.write_text("50000 100000\n")
    assert rebuild.default_workers(cpu_max) == 1
    cpu_max.write_text("1600000 100000\n")
    assert rebuild.default_workers(cpu_max) == cores


def test_the_rebuild_command_takes_a_count_of_workers() -> None:
    from services.cli import _at_least_one

    assert _at_least_one("3") == 3
    for bad in ("0", "-2", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            _at_least_one(bad)
