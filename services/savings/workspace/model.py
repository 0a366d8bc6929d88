"""The workspace read model: a pure fold of the canonical streams (`P:<type>`) and the refusals
(`P:rejected:<partner>`) into typed views for the commissioner's pages and the joint-committee
report. No I/O here (services/savings/workspace/source.py reads Redis).

`evolve(ws, entry)` adds one stream entry; the same events in any order give the same views
(each slot keeps the highest revision, ties to the larger `source id`). The savings figures come
from the savings model itself (services.savings.model), so the workspace shows exactly what
`GET /savings` shows. Budgets are never in a view (docs/authority.md, Confidentiality).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from services.savings import model as savings
from services.savings.workspace.appraisal import Appraisal, AppraisalPolicy, appraise, option_inputs
from shared.contract.base import revision_of
from shared.dates import REVIEW_NOTICE_MONTHS, add_months, anniversaries
from shared.events import (
    ContractDecommissioned,
    ContractMemberExited,
    ContractReviewRecorded,
    ContractSlaAgreed,
    DecommissioningProposed,
    InvestmentRecorded,
    MonitoringReturnJudged,
    MonitoringReturnSubmitted,
    NeedIdentified,
    NeedWithdrawn,
    OpportunityIdentified,
    Payload,
    PaymentCalculated,
    PerformanceConcern,
    ReturnOverdue,
    TenderAwarded,
    TenderNotice,
)
from shared.money import round_money
from shared.policy import SavingsPolicy

#: accepted acts kept per object for the audit trail (older ones stay in the streams and archive)
TRAIL_PER_OBJECT = 200
#: how far ahead the pipeline plans recommissioning
PLANNING_MONTHS = 12

RAG = {
    "on_target": "green",
    "approaching_target": "amber",
    "requires_improvement": "amber",
    "inadequate": "red",
}
SUBJECTS = ("contract_id", "tender_id", "opportunity_id", "need_id", "investment_id")
SAVINGS_TYPES = (
    NeedIdentified,
    TenderAwarded,
    MonitoringReturnSubmitted,
    ContractDecommissioned,
    ContractMemberExited,
    InvestmentRecorded,
)


@dataclass(frozen=True)
class Entry:
    """One stream entry, parsed: an accepted act, or a refusal with its reason."""

    stream_id: str  # the Redis entry id: orders the trail
    key: str  # the event's `source id`
    type: str
    actor: str  # the partner (or service) that sent it
    time: str
    payload: Payload | None  # None for a refusal
    subject: str  # what it is about: a contract, tender, opportunity, need or investment id
    refused: str | None = None  # the reason code
    message: str = ""


@dataclass
class Workspace:
    facts: savings.Facts = field(default_factory=savings.Facts)
    needs: dict[tuple[str, str], NeedIdentified] = field(default_factory=dict)
    withdrawn: set[tuple[str, str]] = field(default_factory=set)
    opportunities: dict[str, OpportunityIdentified] = field(default_factory=dict)
    tenders: dict[str, dict[str, TenderNotice]] = field(default_factory=dict)  # by tender, then stage
    slas: dict[str, ContractSlaAgreed] = field(default_factory=dict)
    judged: dict[str, MonitoringReturnJudged] = field(default_factory=dict)  # by return key
    overdue: dict[tuple[str, date, date], ReturnOverdue] = field(default_factory=dict)
    concerns: dict[str, PerformanceConcern] = field(default_factory=dict)
    payments: dict[str, PaymentCalculated] = field(default_factory=dict)
    reviews: dict[tuple[str, date], ContractReviewRecorded] = field(default_factory=dict)  # by anniversary
    proposals: dict[str, DecommissioningProposed] = field(default_factory=dict)
    trail: dict[str, deque[Entry]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    ranks: dict[tuple[str, Any], tuple[int, str]] = field(default_factory=dict)  # what each slot holds


def subject_of(data: dict[str, Any]) -> str:
    return next((str(data[f]) for f in SUBJECTS if isinstance(data, dict) and f in data), "")


def _keep(ws: Workspace, name: str, slots: dict[Any, Any], slot: Any, key: str, payload: Payload) -> None:
    """Keep the highest (revision, source id) in each slot, whatever order events came in."""
    rank = (revision_of(payload), key)
    old = ws.ranks.get((name, slot))
    if old is None or rank > old:
        ws.ranks[(name, slot)] = rank
        slots[slot] = payload


def evolve(ws: Workspace, e: Entry) -> Workspace:
    seen_key = ("x:" if e.refused else "") + e.key
    if seen_key in ws.seen:
        return ws
    ws.seen.add(seen_key)
    trail = ws.trail.setdefault(e.subject, deque(maxlen=TRAIL_PER_OBJECT))
    trail.append(e)
    p = e.payload
    if p is None:
        return ws
    if isinstance(p, SAVINGS_TYPES):
        savings.evolve(ws.facts, e.key, p)
    match p:
        case NeedIdentified():
            _keep(ws, "need", ws.needs, (p.partner_id, p.need_id), e.key, p)
        case NeedWithdrawn():
            ws.withdrawn.add((p.partner_id, p.need_id))
        case OpportunityIdentified():
            _keep(ws, "opportunity", ws.opportunities, p.opportunity_id, e.key, p)
        case TenderNotice():
            _keep(ws, f"tender:{p.tender_id}", ws.tenders.setdefault(p.tender_id, {}), e.type, e.key, p)
        case ContractSlaAgreed():
            _keep(ws, "sla", ws.slas, p.contract_id, e.key, p)
        case MonitoringReturnJudged():
            _keep(ws, "judged", ws.judged, p.return_key, e.key, p)
        case ReturnOverdue():
            _keep(ws, "overdue", ws.overdue, (p.contract_id, p.period_start, p.period_end), e.key, p)
        case PerformanceConcern():
            _keep(ws, "concern", ws.concerns, p.concern_id, e.key, p)
        case PaymentCalculated():
            _keep(ws, "payment", ws.payments, p.payment_id, e.key, p)
        case ContractReviewRecorded():
            _keep(ws, "review", ws.reviews, (p.contract_id, p.review_for), e.key, p)
        case DecommissioningProposed():
            _keep(ws, "proposal", ws.proposals, p.contract_id, e.key, p)
    return ws


# -- the views -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerRow:
    partner_id: str
    name: str
    baseline_annual_cost: Decimal
    shared_cost_share: Decimal  # its share of the shared contracts' management cost, a year
    annual_saving: Decimal
    realised_saving: Decimal
    projected_saving: Decimal
    investment: Decimal
    roi: Decimal | None  # on its own investment; None without any


@dataclass(frozen=True)
class YearRow:
    year: int
    start: date
    end: date
    saving: Decimal
    discounted_saving: Decimal
    cumulative_saving: Decimal


@dataclass(frozen=True)
class Overview:
    as_of: date | None
    baseline_annual_cost: Decimal
    shared_annual_cost: Decimal
    annual_saving: Decimal
    investment: Decimal
    projected_saving: Decimal
    realised_saving: Decimal
    roi: Decimal | None
    npv: Decimal | None
    partners: tuple[PartnerRow, ...]
    years: tuple[YearRow, ...]


def _d(x: Any) -> Decimal:
    return Decimal(str(x)) if x is not None else Decimal("0.00")


def overview(ws: Workspace, names: dict[str, str], policy: SavingsPolicy) -> Overview:
    fig = savings.project(ws.facts, policy)
    pf = fig["portfolio"]
    partners = []
    for p in fig["partners"]:
        invest = _d(p["investment"])
        projected = _d(p["projected_saving"])
        roi = round_money((projected - invest) / invest) if invest else None
        partners.append(
            PartnerRow(
                p["partner_id"],
                names.get(p["partner_id"], p["partner_id"]),
                _d(p["baseline_annual_cost"]),
                _d(p["baseline_annual_cost"]) - _d(p["annual_saving"]),
                _d(p["annual_saving"]),
                _d(p["realised_saving"]),
                projected,
                invest,
                roi,
            )
        )
    partners.sort(key=lambda r: (-r.annual_saving, r.name))
    years = tuple(
        YearRow(
            y["year"],
            date.fromisoformat(y["from"]),
            date.fromisoformat(y["to"]),
            _d(y["saving"]),
            _d(y["discounted_saving"]),
            _d(y["cumulative_saving"]),
        )
        for y in fig.get("years", [])
    )
    disc = fig.get("discounted") or {}
    return Overview(
        date.fromisoformat(fig["as_of"]) if fig.get("as_of") else None,
        _d(pf["baseline_annual_cost"]),
        _d(pf["shared_annual_cost"]),
        _d(pf["annual_saving"]),
        _d(pf["investment"]),
        _d(pf["projected_saving"]),
        _d(pf["realised_saving"]),
        _d(pf["roi"]) if pf.get("roi") is not None else None,
        _d(disc["npv"]) if disc.get("npv") is not None else None,
        tuple(partners),
        years,
    )


@dataclass(frozen=True)
class KpiRow:
    kpi_id: str
    target: str
    actual: str
    rating: str
    rag: str
    trend: str  # improving / worsening / steady / first return


@dataclass(frozen=True)
class ConcernRow:
    concern_id: str
    kpi_id: str
    status: str  # raised / escalated / termination_considered
    raised_for: date
    improvement_plan_due: date


@dataclass(frozen=True)
class ContractRow:
    contract_id: str
    supplier_id: str
    supplier: str
    lead: str
    partners: tuple[str, ...]
    model: str
    start: date
    end: date  # the decommissioning's effective date where earlier
    status: str  # active / ended / decommissioned / awarded
    annual_value: Decimal
    monitoring: str
    sla_agreed: bool
    payment_by_results: str  # share of payment at risk, or ""
    kpis: tuple[KpiRow, ...]
    returns_received: int
    overdue: tuple[date, ...]  # periods ending on these dates have no return
    concerns: tuple[ConcernRow, ...]  # open ones
    payments_total: Decimal
    next_review: date | None
    review_notice: date | None
    rag: str
    #: the latest annual review recorded, and the anniversaries passed with none recorded
    last_review: ContractReviewRecorded | None = None
    reviews_missing: tuple[date, ...] = ()
    #: a planned decommissioning: its consultation and impact assessment
    proposal: DecommissioningProposed | None = None

    @property
    def underperforming(self) -> bool:
        return self.rag in ("amber", "red") or bool(self.concerns)


def _trend(ratings: list[tuple[date, Decimal]]) -> str:
    if len(ratings) < 2:
        return "first return" if ratings else "no return"
    (_, before), (_, last) = ratings[-2], ratings[-1]
    return "improving" if last > before else "worsening" if last < before else "steady"


def contracts(ws: Workspace, names: dict[str, str], today: date | None) -> tuple[ContractRow, ...]:
    rows = []
    by_contract: dict[str, list[MonitoringReturnJudged]] = {}
    for j in ws.judged.values():
        by_contract.setdefault(j.contract_id, []).append(j)
    for cid, fact in sorted(ws.facts.awards.items()):
        a: TenderAwarded = fact.payload
        dec = ws.facts.decommissions.get(cid)
        end = min(a.contract_end, dec.payload.effective_date) if dec else a.contract_end
        status = (
            "decommissioned"
            if dec and today and dec.payload.effective_date <= today
            else "ended"
            if today and end < today
            else "active"
            if today and a.contract_start <= today
            else "awarded"
        )
        sla = ws.slas.get(cid)
        judged = sorted(by_contract.get(cid, []), key=lambda j: (j.period_end, j.partner_id))
        series: dict[str, list[tuple[date, Decimal]]] = {}
        latest: dict[str, Any] = {}
        for j in judged:
            for k in j.ratings:
                series.setdefault(k.kpi_id, []).append((j.period_end, Decimal(k.achievement)))
                latest[k.kpi_id] = k
        kpis = tuple(
            KpiRow(
                k.kpi_id,
                k.target,
                k.actual,
                k.rating.replace("_", " "),
                RAG[k.rating],
                _trend(series[k.kpi_id]),
            )
            for k in (latest[i] for i in sorted(latest))
        )
        if sla is not None:
            kpis += tuple(
                KpiRow(t.kpi_id, str(t.target), "", "no return yet", "grey", "no return")
                for t in sla.kpis
                if t.kpi_id not in latest
            )
        overdue = tuple(
            sorted(o.period_end for (c, _, _), o in ws.overdue.items() if c == cid and o.status == "overdue")
        )
        open_concerns = tuple(
            sorted(
                (
                    ConcernRow(
                        c.concern_id,
                        c.kpi_id,
                        c.status.replace("_", " "),
                        c.raised_for,
                        c.improvement_plan_due,
                    )
                    for c in ws.concerns.values()
                    if c.contract_id == cid and c.status != "resolved"
                ),
                key=lambda c: c.raised_for,
            )
        )
        paid = sum((Decimal(p.total) for p in ws.payments.values() if p.contract_id == cid), Decimal("0.00"))
        review = next_review(a.contract_start, end, today)
        recorded = sorted((d, r) for (c, d), r in ws.reviews.items() if c == cid)
        missing = tuple(
            d
            for d in anniversaries(a.contract_start, end)
            if today is not None and d < today and (cid, d) not in ws.reviews
        )
        rags = {k.rag for k in kpis}
        rag = (
            "grey"
            if status in ("decommissioned", "ended")
            else "red"
            if "red" in rags or any(c.status != "raised" for c in open_concerns) or overdue
            else "amber"
            if "amber" in rags or open_concerns
            else "green"
            if "green" in rags
            else "grey"
        )
        pbr = sla.payment_by_results if sla else None
        rows.append(
            ContractRow(
                cid,
                a.supplier.id,
                a.supplier.name,
                names.get(a.lead_partner_id, a.lead_partner_id),
                tuple(sorted({names.get(s.partner_id, s.partner_id) for s in a.partners})),
                a.commissioning_model.replace("_", " "),
                a.contract_start,
                end,
                status,
                a.annual_value,
                (sla.monitoring if sla and sla.monitoring else "quarterly"),
                sla is not None,
                f"{pbr.share * 100:.0f}% of payment on results" if pbr else "",
                kpis,
                len(judged),
                overdue,
                open_concerns,
                round_money(paid),
                review,
                add_months(review, -REVIEW_NOTICE_MONTHS) if review else None,
                rag,
                recorded[-1][1] if recorded else None,
                missing,
                ws.proposals.get(cid),
            )
        )
    return tuple(rows)


def next_review(start: date, end: date, today: date | None) -> date | None:
    """The next anniversary of the start (the annual review) that falls inside the term."""
    if today is None:
        return None
    return next((d for d in anniversaries(start, end) if d > today), None)


@dataclass(frozen=True)
class ProviderRow:
    supplier_id: str
    name: str
    contracts: tuple[str, ...]
    annual_value: Decimal  # of its active contracts
    partners: int
    kpis_on_target: int
    kpis_rated: int
    open_concerns: int
    overdue_returns: int
    rag: str


def providers(rows: tuple[ContractRow, ...]) -> tuple[ProviderRow, ...]:
    out = []
    order = ["grey", "green", "amber", "red"]
    for sid in sorted({r.supplier_id for r in rows}):
        mine = [r for r in rows if r.supplier_id == sid]
        rated = [k for r in mine for k in r.kpis if k.rag != "grey"]
        out.append(
            ProviderRow(
                sid,
                mine[0].supplier,
                tuple(r.contract_id for r in mine),
                sum((r.annual_value for r in mine if r.status in ("active", "awarded")), Decimal("0.00")),
                len({p for r in mine for p in r.partners}),
                sum(k.rag == "green" for k in rated),
                len(rated),
                sum(len(r.concerns) for r in mine),
                sum(len(r.overdue) for r in mine),
                max((r.rag for r in mine), key=order.index),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class NeedRow:
    partner: str
    need_id: str
    title: str
    category: str
    arrangements: int
    staff_cost: Decimal  # the baseline; never the budget
    arrangements_end: date
    status: str  # open / withdrawn / not open to sharing


@dataclass(frozen=True)
class OpportunityRow:
    opportunity_id: str
    category: str
    status: str
    window_start: date
    window_end: date
    lead: str
    joined: tuple[str, ...]
    declined: tuple[str, ...]
    undecided: tuple[str, ...]
    appraisal: Appraisal
    contract: str | None  # the awarded contract that already replaces its needs, if any


@dataclass(frozen=True)
class TenderRow:
    tender_id: str
    title: str
    stage: str
    closing_date: str


@dataclass(frozen=True)
class EndDate:
    """One thing that ends: a contract (to recommission) or a partner's current arrangements."""

    when: date
    what: str  # contract / arrangements
    subject: str
    who: str
    within_planning: bool  # in the next PLANNING_MONTHS from as_of
    position: Decimal  # 0..100, on the timeline
    opportunity: str | None = None  # the opportunity in the same service, whose appraisal applies
    recommendation: str | None = None


@dataclass(frozen=True)
class Pipeline:
    as_of: date | None
    needs: tuple[NeedRow, ...]
    opportunities: tuple[OpportunityRow, ...]
    tenders: tuple[TenderRow, ...]
    ends: tuple[EndDate, ...]
    timeline_start: date | None
    timeline_end: date | None


STAGES = (
    "tender.published",
    "tender.closed",
    "tender.award.intended",
    "tender.evaluation.published",
    "tender.cancelled",
)


def pipeline(
    ws: Workspace,
    names: dict[str, str],
    rows: tuple[ContractRow, ...],
    today: date | None,
    policy: AppraisalPolicy,
) -> Pipeline:
    needs = tuple(
        sorted(
            (
                NeedRow(
                    names.get(p, p),
                    nid,
                    n.title,
                    n.service_category,
                    n.current_arrangements,
                    n.current_annual_resource_cost,
                    n.current_arrangements_end,
                    "withdrawn"
                    if (p, nid) in ws.withdrawn
                    else "open"
                    if n.open_to_sharing
                    else "not open to sharing",
                )
                for (p, nid), n in ws.needs.items()
            ),
            key=lambda r: (r.category, r.partner),
        )
    )
    awarded = {
        (s.partner_id, s.need_id): cid for cid, f in ws.facts.awards.items() for s in f.payload.partners
    }
    opps = []
    for oid, o in sorted(ws.opportunities.items()):
        baseline = sum(
            (
                ws.needs[(n.partner_id, n.need_id)].current_annual_resource_cost
                for n in o.needs
                if n.decision != "declined" and (n.partner_id, n.need_id) in ws.needs
            ),
            Decimal(0),
        )
        count = len({n.partner_id for n in o.needs if n.decision != "declined"})
        inputs = option_inputs([(x.option, x.annual_cost) for x in o.options], count, policy)
        opps.append(
            OpportunityRow(
                oid,
                o.service_category,
                o.status.replace("_", " "),
                o.window_start,
                o.window_end,
                names.get(o.lead_partner_id or "", o.lead_partner_id or "none yet"),
                *(
                    tuple(sorted(names.get(n.partner_id, n.partner_id) for n in o.needs if n.decision == d))
                    for d in ("joined", "declined", "undecided")
                ),
                appraise(baseline, inputs, policy.horizon_years, policy.discount_rate),
                next(
                    (
                        awarded[(n.partner_id, n.need_id)]
                        for n in o.needs
                        if (n.partner_id, n.need_id) in awarded
                    ),
                    None,
                ),
            )
        )
    tenders = []
    for tid, stages in sorted(ws.tenders.items()):
        stage = max(stages, key=STAGES.index)
        pub = stages.get("tender.published")
        extra = (pub.model_extra or {}) if pub else {}
        tenders.append(
            TenderRow(
                tid,
                str(extra.get("title", tid)),
                stage.removeprefix("tender.").replace(".", " "),
                str(extra.get("closing_date", "")),
            )
        )
    category = {
        cid: next(
            (
                ws.needs[(s.partner_id, s.need_id)].service_category
                for s in f.payload.partners
                if (s.partner_id, s.need_id) in ws.needs
            ),
            "",
        )
        for cid, f in ws.facts.awards.items()
    }
    by_category = {o.category: o for o in opps}
    ends = [
        (r.end, "contract", r.contract_id, r.supplier, by_category.get(category.get(r.contract_id, "")))
        for r in rows
        if r.status in ("active", "awarded")
    ]
    ends += [
        (
            n.current_arrangements_end,
            "arrangements",
            n.title,
            names.get(p, p),
            by_category.get(n.service_category),
        )
        for (p, nid), n in ws.needs.items()
        if (p, nid) not in awarded and (p, nid) not in ws.withdrawn
    ]
    ends.sort(key=lambda e: e[:4])
    start = today or (ends[0][0] if ends else None)
    stop = max([e[0] for e in ends] + ([add_months(start, PLANNING_MONTHS)] if start else []), default=None)
    span = (stop - start).days if start and stop and stop > start else 1
    horizon = add_months(today, PLANNING_MONTHS) if today else None
    timeline = tuple(
        EndDate(
            w,
            what,
            subj,
            who,
            bool(today and horizon and today <= w <= horizon),
            Decimal(max(0, min(100, round(100 * (w - start).days / span)))) if start else Decimal(0),
            o.opportunity_id if o else None,
            o.appraisal.recommendation if o else None,
        )
        for w, what, subj, who, o in ends
    )
    return Pipeline(today, needs, tuple(opps), tuple(tenders), timeline, start, stop)


def trail(ws: Workspace, query: str = "", limit: int = 500) -> tuple[Entry, ...]:
    """Every accepted and refused act kept, newest first; `query` matches the object, type,
    actor or reason (case-insensitive)."""
    q = query.strip().lower()
    found = [
        e
        for entries in ws.trail.values()
        for e in entries
        if not q or q in " ".join((e.subject, e.type, e.actor, e.refused or "", e.message)).lower()
    ]
    found.sort(key=lambda e: tuple(int(x) for x in e.stream_id.split("-")), reverse=True)
    return tuple(found[:limit])


def today_of(ws: Workspace) -> date | None:
    return savings.as_of(ws.facts)
