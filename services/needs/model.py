"""The needs model: the register of needs, cross-partner matching and option appraisal.
Pure functions of the set of events; no I/O.

- A need's current state is its event with the highest revision (`need.identified` is 0,
  `need.updated` and `need.withdrawn` carry theirs); at equal revisions a withdrawal, then the
  larger `source id`. A partner's decision on an opportunity is likewise its highest revision,
  a decline at equal revisions.
- Matching: in each service category, needs open to sharing are grouped by when their current
  arrangements end: a group starts at the earliest end date and takes every need ending within
  `window_months` of it. A group is an opportunity when it holds at least one need worth
  sharing (annual budget at least `floor`) and needs of two or more partners; needs below the
  floor join only such groups.
- Appraisal: aligned budgets with a lead commissioner, a stand-alone partnership, and doing
  nothing (always listed, the baseline), costed with the one shared cost policy.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.authority import Refused, Verdict
from shared.contract.base import revision_of
from shared.dates import add_months
from shared.events import (
    NeedIdentified,
    NeedUpdated,
    NeedWithdrawn,
    OpportunityDeclined,
    OpportunityJoined,
    Payload,
)
from shared.money import gbp, money_str
from shared.policy import SavingsPolicy


class NeedsPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: needs whose arrangements end within this many months of each other can be matched
    window_months: int = Field(default=12, ge=0, le=120)
    #: a need is worth sharing on its own from this annual budget; smaller ones only join
    floor: Decimal = Field(default=Decimal("10000"), ge=0)


# -- the register ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    rank: tuple[int, int, str]  # (revision, withdrawal or decline first, source id)
    payload: Any


@dataclass
class Register:
    needs: dict[tuple[str, str], Version] = field(default_factory=dict)
    decisions: dict[tuple[str, str], Version] = field(default_factory=dict)
    #: the current needs of each service category (matching is within a category)
    in_category: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    #: categories an event changed since the service last matched (`Opportunities`)
    touched: set[str] = field(default_factory=set)
    #: the needs an event changed since the service last matched, by category (the one they
    #: were in and the one they are in): what `Matched` puts in its order again
    moved: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def current(self, category: str | None = None, ordered: bool = True) -> list[NeedIdentified]:
        """The current needs (of one category), withdrawn ones left out; by partner and need id,
        or as they come when not `ordered` (matching puts them in an order of its own: sorting
        them here too was a quarter of matching a category)."""
        slots = self.needs if category is None else self.in_category.get(category, ())
        if not ordered:
            needs = self.needs
            return [p for s in slots if not isinstance(p := needs[s].payload, NeedWithdrawn)]
        return [
            v.payload
            for _, v in sorted((s, self.needs[s]) for s in slots)
            if not isinstance(v.payload, NeedWithdrawn)
        ]

    def decision(self, opportunity_id: str, partner_id: str) -> Payload | None:
        v = self.decisions.get((opportunity_id, partner_id))
        return v.payload if v else None


def _keep(slots: dict[tuple[str, str], Version], slot: tuple[str, str], new: Version) -> None:
    old = slots.get(slot)
    if old is None or new.rank > old.rank:
        slots[slot] = new


def evolve(reg: Register, key: str, payload: Payload) -> Register:
    """Fold one accepted event; folding it again changes nothing (each slot keeps its highest
    rank), so no per-event set is kept."""
    match payload:
        case NeedUpdated() | NeedWithdrawn() | NeedIdentified():
            first = 1 if isinstance(payload, NeedWithdrawn) else 0
            slot = (payload.partner_id, payload.need_id)
            old = reg.needs.get(slot)
            _keep(reg.needs, slot, Version((revision_of(payload), first, key), payload))
            for version, now in ((old, False), (reg.needs[slot], True)):
                category = getattr(version.payload, "service_category", None) if version is not None else None
                if category is not None:
                    reg.touched.add(category)
                    reg.moved.setdefault(category, set()).add(slot)
                    members = reg.in_category.setdefault(category, set())
                    members.add(slot) if now else members.discard(slot)
        case OpportunityJoined() | OpportunityDeclined():
            first = 1 if isinstance(payload, OpportunityDeclined) else 0
            _keep(
                reg.decisions,
                (payload.opportunity_id, payload.partner_id),
                Version((payload.revision, first, key), payload),
            )
            reg.touched.add(category_of(payload.opportunity_id))
        case _:
            raise TypeError(f"the needs register does not use {type(payload).__name__}")
    return reg


# -- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    opportunity_id: str
    service_category: str
    needs: tuple[NeedIdentified, ...]
    window_start: date
    window_end: date


_MATCH_ORDER = attrgetter("current_arrangements_end", "partner_id", "need_id")


def match(needs: list[NeedIdentified], policy: NeedsPolicy) -> list[Group]:
    """The groups the needs make, whatever order they come in."""
    by_category: dict[str, list[NeedIdentified]] = {}
    for n in needs:
        if n.open_to_sharing:
            by_category.setdefault(n.service_category, []).append(n)
    groups = []
    for category, candidates in sorted(by_category.items()):
        candidates.sort(key=_MATCH_ORDER)  # a total order: slots are unique
        ends = [n.current_arrangements_end for n in candidates]  # in order
        groups += _windows(category, candidates, ends, policy)
    return groups


def _windows(
    category: str, candidates: list[NeedIdentified], ends: list[date], policy: NeedsPolicy
) -> list[Group]:
    """The groups one category's candidates make (open to sharing, in `_MATCH_ORDER`; `ends`:
    their arrangements' ends, in that order)."""
    groups, floor, i = [], policy.floor, 0
    while i < len(candidates):
        start = ends[i]
        j = bisect_right(ends, add_months(start, policy.window_months), i)
        members = tuple(candidates[i:j])
        if any(n.annual_budget >= floor for n in members) and len({n.partner_id for n in members}) >= 2:
            groups.append(
                Group(
                    f"{category}-{start:%Y-%m}",
                    category,
                    members,
                    start,
                    members[-1].current_arrangements_end,
                )
            )
        i = j
    return groups


# -- the partners' requests, decided (shared.authority; docs/authority.md) -------------------


def check_request(reg: Register, policy: NeedsPolicy, payload: Payload) -> Verdict:
    """A partner's act on a need or an opportunity: each partner acts for its own needs only
    (the gateway checks `partner_id` is the signer); an update or withdrawal needs the need;
    a join or decline needs an opportunity the partner has a need in."""
    match payload:
        case NeedUpdated() | NeedWithdrawn():
            if (payload.partner_id, payload.need_id) not in reg.needs:
                raise Refused(
                    "unknown_need", f"{payload.partner_id} has identified no need '{payload.need_id}'"
                )
        case OpportunityJoined() | OpportunityDeclined():
            # matching is within a category, and an opportunity's id names its own: only that
            # category's needs are matched (not every need of the partnership for each decision)
            needs = reg.current(category_of(payload.opportunity_id), ordered=False)
            group = next(
                (g for g in match(needs, policy) if g.opportunity_id == payload.opportunity_id), None
            )
            if group is None:
                raise Refused("unknown_opportunity", f"no opportunity '{payload.opportunity_id}' is open")
            if payload.partner_id not in {n.partner_id for n in group.needs}:
                raise Refused(
                    "not_in_opportunity",
                    f"{payload.partner_id} has no need in {payload.opportunity_id}: "
                    "only its partners decide on it",
                )
    return ()


# -- appraisal ------------------------------------------------------------------------------


def _lead(budgets: dict[str, Decimal], offers: set[str]) -> str | None:
    """The largest contributor (annual budget in this opportunity, by partner), among those
    who offered to lead if any did; ties to the partner id that sorts first."""
    pool = {p: b for p, b in budgets.items() if p in offers} or budgets
    return min(pool, key=lambda p: (-pool[p], p)) if pool else None


def appraise(group: Group, reg: Register, policy: SavingsPolicy) -> dict[str, Any]:
    """The opportunity's payload (OpportunityIdentified fields but `revision`). A category may
    hold thousands of needs from a few dozen partners: each partner's decision and sums are
    worked out once, not for each of its needs."""
    # each partner's arrangements, resource cost and budget in the group, in order of appearance
    sums: dict[str, list[Any]] = {}
    for n in group.needs:
        held = sums.get(n.partner_id)
        if held is None:
            sums[n.partner_id] = [n.current_arrangements, n.current_annual_resource_cost, n.annual_budget]
        else:
            held[0] += n.current_arrangements
            held[1] += n.current_annual_resource_cost
            held[2] += n.annual_budget
    decisions = {}
    offers = set()
    for pid in sums:
        d = reg.decision(group.opportunity_id, pid)
        decisions[pid] = (
            "declined"
            if isinstance(d, OpportunityDeclined)
            else "joined"
            if isinstance(d, OpportunityJoined)
            else "undecided"
        )
        if isinstance(d, OpportunityJoined) and d.offers_to_lead:
            offers.add(pid)
    joined = [pid for pid, d in decisions.items() if d == "joined"]
    active = [pid for pid, d in decisions.items() if d != "declined"]
    if len(joined) >= 2:
        status, basis = "proposed", joined
    elif len(active) >= 2:
        status, basis = "open", active
    else:
        status, basis = "not_viable", active

    partners = sorted(basis)
    count = len(partners)
    arrangements = sum(sums[pid][0] for pid in basis)
    baseline = sum((sums[pid][1] for pid in basis), Decimal(0))
    lead = _lead({pid: sums[pid][2] for pid in basis}, offers) if count >= 2 else None
    aligned_cost = policy.shared_cost(count)
    stand_alone_cost = policy.shared_cost(1) * count
    options = [
        _option(
            "aligned_budgets",
            aligned_cost,
            baseline - aligned_cost,
            lead,
            f"{lead} leads and procures once for {count} partners; one contract, managed once, "
            f"estimated at {gbp(aligned_cost)} a year",
        ),
        _option(
            "stand_alone_partnership",
            stand_alone_cost,
            baseline - stand_alone_cost,
            lead,
            f"{lead} procures once; each of the {count} partners keeps managing its own contract, "
            f"{gbp(policy.shared_cost(1))} a year each",
        ),
        _option(
            "do_nothing",
            baseline,
            Decimal(0),
            None,
            f"{arrangements} separate arrangements stay as they are, "
            f"costing {gbp(baseline)} a year to administer",
        ),
    ]
    best = max(options[:2], key=lambda o: Decimal(o["annual_saving"]))
    if status == "not_viable" or Decimal(best["annual_saving"]) <= 0:
        recommendation = "do_nothing"
    else:
        recommendation = best["option"]
    return {
        "opportunity_id": group.opportunity_id,
        "service_category": group.service_category,
        "status": status,
        "needs": [
            {"partner_id": n.partner_id, "need_id": n.need_id, "decision": decisions[n.partner_id]}
            for n in group.needs
        ],
        "window_start": group.window_start.isoformat(),
        "window_end": group.window_end.isoformat(),
        "lead_partner_id": lead,
        "options": options,
        "recommendation": recommendation,
        "reasons": _reasons(status, recommendation, options, count, arrangements, baseline, group, decisions),
    }


def _option(name: str, cost: Decimal, saving: Decimal, lead: str | None, summary: str) -> dict[str, Any]:
    return {
        "option": name,
        "annual_cost": money_str(cost),
        "annual_saving": money_str(saving),
        "lead_partner_id": lead,
        "summary": summary,
    }


def _reasons(
    status: str,
    recommendation: str,
    options: list[dict[str, Any]],
    count: int,
    arrangements: int,
    baseline: Decimal,
    group: Group,
    decisions: dict[str, str],
) -> list[str]:
    declined = sorted(p for p, d in decisions.items() if d == "declined")
    reasons = []
    if status == "not_viable":
        reasons.append(f"Fewer than two partners remain ({count}); shared commissioning needs at least two.")
    else:
        reasons.append(
            f"{count} partners need {group.service_category} with arrangements ending between "
            f"{group.window_start:%-d %B %Y} and {group.window_end:%-d %B %Y}: {arrangements} arrangements "
            f"costing {gbp(baseline)} a year to administer."
        )
    if declined:
        reasons.append(f"Not included, having declined: {', '.join(declined)}.")
    chosen = next(o for o in options if o["option"] == recommendation)
    if recommendation == "do_nothing":
        if status != "not_viable":
            reasons.append(
                "Neither shared option saves money here, so the partners are better off as they are."
            )
    else:
        other = next(o for o in options[:2] if o["option"] != recommendation)
        reasons.append(
            f"{recommendation.replace('_', ' ').capitalize()} saves {gbp(chosen['annual_saving'])} a year, "
            f"against {gbp(other['annual_saving'])} for the {other['option'].replace('_', ' ')}."
        )
    if status == "open":
        reasons.append(
            "Each partner decides: it is proposed for joint procurement once two or more partners join."
        )
    elif status == "proposed":
        reasons.append("Proposed for joint procurement with the partners that joined.")
    return reasons


def opportunities(reg: Register, policy: NeedsPolicy, savings: SavingsPolicy) -> dict[str, dict[str, Any]]:
    """The opportunities the needs make (`Matched` keeps the same up to date a category at a time)."""
    return {g.opportunity_id: appraise(g, reg, savings) for g in match(reg.current(ordered=False), policy)}


def category_of(opportunity_id: str) -> str:
    """An opportunity's service category: its id is `<category>-<YYYY-MM>` (`match`)."""
    return opportunity_id[:-8]


class Matched:
    """The opportunities, kept up to date incrementally: matching is within a service category,
    so after a batch only the categories its events touched are matched again."""

    def __init__(self, policy: NeedsPolicy, savings: SavingsPolicy) -> None:
        self.policy, self.savings = policy, savings
        self.opportunities: dict[str, dict[str, Any]] = {}
        self._of: Register | None = None
        #: each category's candidates for matching (current, open to sharing) in `_MATCH_ORDER`,
        #: kept as needs move (`Register.moved`) rather than sorted again each time (at 11,430
        #: needs in a category, sorting them was a third of matching it), and the entry of each
        #: (category, need) in it
        self._order: dict[str, list[tuple[date, str, str, NeedIdentified]]] = {}
        self._entry: dict[tuple[str, tuple[str, str]], tuple[date, str, str, NeedIdentified]] = {}

    def refresh(self, reg: Register) -> set[str] | None:
        """Match again what changed in `reg`: the opportunities to look at (those found now
        and those gone), or None for all (the first time, or after the index was read whole).
        The needs service does the same a category at a time (`touched`, `refresh_category`),
        yielding between."""
        whole = not self.follows(reg)
        scope: set[str] = set()
        for category in self.touched(reg):
            scope |= self.refresh_category(reg, category)
        return None if whole else scope

    def follows(self, reg: Register) -> bool:
        """Whether the opportunities are those of `reg` (not of an index since read whole)."""
        return reg is self._of

    def touched(self, reg: Register) -> list[str]:
        """The categories to match again (taken from `reg`); all of them when `reg` is new."""
        if reg is not self._of:
            self._of, self.opportunities, self._order, self._entry = reg, {}, {}, {}
            reg.touched, reg.moved = set(reg.in_category), {}
        categories, reg.touched = reg.touched, set()
        return sorted(categories)

    def refresh_category(self, reg: Register, category: str) -> set[str]:
        """Match one category again: its opportunities to look at (found now, and gone)."""
        before = {oid for oid in self.opportunities if category_of(oid) == category}
        order = self._ordered(reg, category)
        groups = _windows(category, [e[3] for e in order], [e[0] for e in order], self.policy)
        found = {g.opportunity_id: appraise(g, reg, self.savings) for g in groups}
        for oid in before - set(found):
            del self.opportunities[oid]
        self.opportunities.update(found)
        return before | set(found)

    def _ordered(self, reg: Register, category: str) -> list[tuple[date, str, str, NeedIdentified]]:
        """The category's candidates in `_MATCH_ORDER` (`_order`), the needs moved since put in
        place again."""
        moved = reg.moved.pop(category, ())
        order = self._order.get(category)
        if order is None:
            order = self._order[category] = sorted(
                e for slot in reg.in_category.get(category, ()) if (e := self._candidate(reg, category, slot))
            )
            return order
        for slot in moved:
            old = self._entry.pop((category, slot), None)
            if old is not None:
                k = bisect_left(order, old)  # (end, partner, need): the slot's own place
                assert order[k] is old, "a need's entry is where its order puts it"
                del order[k]
            self._candidate(reg, category, slot, order)
        return order

    def _candidate(
        self,
        reg: Register,
        category: str,
        slot: tuple[str, str],
        into: list[tuple[date, str, str, NeedIdentified]] | None = None,
    ) -> tuple[date, str, str, NeedIdentified] | None:
        """The need's entry in the category's order, if it is a candidate there now (noted, and
        put in place in `into`)."""
        version = reg.needs.get(slot)
        p = version.payload if version is not None else None
        if not isinstance(p, NeedIdentified) or p.service_category != category or not p.open_to_sharing:
            return None
        entry = self._entry[(category, slot)] = (*_MATCH_ORDER(p), p)
        if into is not None:
            insort(into, entry)
        return entry
