"""Property tests: the figures are a function of the set of events alone."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.savings.model import Facts, evolve, project, split
from shared.events import PAYLOADS
from shared.policy import SavingsPolicy
from tests.eventgen import history

POLICY = SavingsPolicy()
PARTNERS = ["a-cc", "b-dc", "c-pct", "d-police", "e-fire"]


def keyed(seed: int) -> list[tuple[str, Any]]:
    return [(f"/partners/{pid} ev-{seed}-{n}", PAYLOADS[t].model_validate(d))
            for n, (pid, t, d) in enumerate(history(seed, PARTNERS))]


def fold(events: list[tuple[str, Any]]) -> dict[str, Any]:
    facts = Facts()
    for key, payload in events:
        evolve(facts, key, payload)
    return project(facts, POLICY)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.randoms(use_true_random=False), dupes=st.integers(0, 30))
def test_shuffling_and_duplicating_events_changes_no_figure(seed: int, order: random.Random, dupes: int) -> None:
    events = keyed(seed)
    expected = fold(events)
    noisy = events + [order.choice(events) for _ in range(dupes)]
    order.shuffle(noisy)
    assert fold(noisy) == expected


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.randoms(use_true_random=False))
def test_replaying_into_a_projection_that_already_has_them_changes_nothing(seed: int, order: random.Random) -> None:
    events = keyed(seed)
    facts = Facts()
    for key, payload in events:
        evolve(facts, key, payload)
    once = project(facts, POLICY)
    replay = list(events)
    order.shuffle(replay)
    for key, payload in replay:
        evolve(facts, key, payload)
    assert project(facts, POLICY) == once


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_every_table_adds_up_to_the_penny(seed: int) -> None:
    f = fold(keyed(seed))
    p = f["portfolio"]
    active = [c for c in f["contracts"] if c["status"] == "active"]
    assert Decimal(p["annual_saving"]) == sum((Decimal(c["annual_saving"]) for c in active), Decimal(0))
    assert Decimal(p["annual_saving"]) == sum((Decimal(x["annual_saving"]) for x in f["partners"]), Decimal(0))
    assert Decimal(p["projected_saving"]) == sum((Decimal(x["projected_saving"]) for x in f["partners"]), Decimal(0))
    assert Decimal(p["realised_saving"]) == sum((Decimal(x["realised_saving"]) for x in f["partners"]), Decimal(0))
    assert Decimal(p["projected_saving"]) == sum((Decimal(y["saving"]) for y in f["years"]), Decimal(0))
    assert Decimal(p["investment"]) == sum((Decimal(x["investment"]) for x in f["partners"]), Decimal(0))


@given(total=st.integers(-10**12, 10**12),
       weights=st.dictionaries(st.text("abcdef", min_size=1, max_size=3),
                               st.fractions(min_value=0, max_value=10**9), min_size=1, max_size=20))
def test_split_always_sums_to_the_whole(total: int, weights: dict[str, Fraction]) -> None:
    parts = split(total, weights)
    assert sum(parts.values()) == total
    assert set(parts) == set(weights)


@given(total=st.integers(-10**12, 10**12),
       weights=st.dictionaries(st.text("abcdef", min_size=1, max_size=3),
                               st.fractions(min_value=0, max_value=10**9, max_denominator=10**6), min_size=1, max_size=20))
def test_split_is_the_largest_remainder_rule(total: int, weights: dict[str, Fraction]) -> None:
    """The integer arithmetic gives what the rule says, computed here with plain fractions:
    floors of the exact shares, then a penny each to the largest remainders (ties by id)."""
    wsum = sum(weights.values())
    if wsum == 0:
        weights, wsum = {k: Fraction(1) for k in weights}, Fraction(len(weights))
    exact = {k: abs(total) * w / wsum for k, w in weights.items()}
    expected = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - int(exact[k])), k))[:abs(total) - sum(expected.values())]:
        expected[k] += 1
    assert split(total, weights) == {k: v if total >= 0 else -v for k, v in expected.items()}


@given(amount=st.fractions(min_value=-10**12, max_value=10**12, max_denominator=10**9))
def test_pence_rounds_half_away_from_zero(amount: Fraction) -> None:
    """The one rounding rule, in integers, against its definition in fractions."""
    import math

    from shared.money import pence

    hundredfold = abs(amount) * 100
    whole = math.floor(hundredfold + Fraction(1, 2))
    assert pence(amount) == (whole if amount >= 0 else -whole)


@settings(max_examples=40, deadline=None)
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=3, unique=True),
       order=st.randoms(use_true_random=False), steps=st.integers(1, 12))
def test_the_memo_cache_never_changes_a_figure(seeds: list[int], order: random.Random, steps: int) -> None:
    """The service keeps one cache across recomputes while events arrive in any order: after
    every step the figures equal those computed from scratch."""
    events = [e for seed in seeds for e in keyed(seed)]
    order.shuffle(events)
    facts, cache = Facts(), {}
    cuts = sorted(order.sample(range(1, len(events)), min(steps, len(events) - 1))) + [len(events)]
    start = 0
    for cut in cuts:
        for key, payload in events[start:cut]:
            evolve(facts, key, payload)
        start = cut
        assert project(facts, POLICY, cache) == project(facts, POLICY)
