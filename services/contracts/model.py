"""The contracts model: the register built from awards, SLAs, monitoring returns and
decommissionings, and everything derived from it. Pure functions of the set of events.

- Returns are judged against their contract: known contract, from the lead or a partner on
  it, period inside the term and before any decommissioning, not a period already returned,
  KPIs the SLA defines. A return judged before its award arrives is re-judged when it does.
- KPIs are rated on the Procurement Act 2023 scale by actual / target: on target (>= 1),
  approaching target, requires improvement, inadequate (thresholds in `ContractsPolicy`).
- A KPI below target raises a performance concern with an improvement plan due date; a later
  return on target resolves it; still below target after the due date it escalates, and a
  further miss puts early termination on the table, the last resort (seed 004).
- Payment by results: the SLA's share of the contract value for each period is paid in
  proportion to achievement (mean of actual / target, each capped at 1; nothing below the
  floor), the rest as a fixed payment.
- Monitoring periods follow the SLA's frequency, else are proportionate to value (annual below
  £25,000 a year, half-yearly below £100,000, else quarterly); a period that ended more than
  `grace_days` before the latest business date without a return is overdue.
- A contract whose end date the business dates have passed, without a decommissioning, ends
  as `contract_end`. That event is the service's own and gives way to the lead's
  decommissioning (dated at the latest the day after the end), whichever arrived first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.authority import Refused, Verdict, Wait
from shared.dates import DAY, REVIEW_NOTICE_MONTHS, add_months, anniversaries
from shared.events import (
    ContractDecommissioned,
    ContractMemberExited,
    ContractReviewRecorded,
    ContractSlaAgreed,
    DecommissioningProposed,
    KpiTerm,
    MonitoringReturnSubmitted,
    Payload,
    TenderAwarded,
)
from shared.money import money_str, round_money

#: the source of the events the contracts service publishes itself (`state.derive`)
SOURCE = "/services/contracts"


class ContractsPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: actual / target from which a KPI is "approaching target" / "requires improvement"
    approaching: Decimal = Field(default=Decimal("0.90"), gt=0, le=1)
    requires_improvement: Decimal = Field(default=Decimal("0.75"), gt=0, le=1)
    #: days after a period ends before its missing return is overdue
    grace_days: int = Field(default=30, ge=0)
    #: days a provider has to deliver an improvement plan's results
    improvement_days: int = Field(default=90, ge=1)
    #: months of notice a member gives to leave a contract whose SLA sets none (seed 004)
    exit_notice_months: int = Field(default=3, ge=0, le=120)


# -- the register ---------------------------------------------------------------------------


@dataclass
class Register:
    awards: dict[str, tuple[str, TenderAwarded]] = field(default_factory=dict)
    slas: dict[tuple[str, str], tuple[tuple[int, str], ContractSlaAgreed]] = field(
        default_factory=dict
    )  # by contract, partner
    returns: dict[str, MonitoringReturnSubmitted] = field(default_factory=dict)  # by event key
    #: by contract, the one that stands: the earliest; at equal dates a partner's before the
    #: service's own `contract_end`, then the smaller key (`decommission_rank`)
    decommissions: dict[str, tuple[tuple[date, bool, str], ContractDecommissioned]] = field(
        default_factory=dict
    )
    exits: dict[tuple[str, str], ContractMemberExited] = field(default_factory=dict)  # by contract, partner
    #: annual reviews by contract, then anniversary: the highest revision stands
    reviews: dict[str, dict[date, tuple[tuple[int, str], ContractReviewRecorded]]] = field(
        default_factory=dict
    )
    proposals: dict[str, tuple[str, DecommissioningProposed]] = field(default_factory=dict)  # one a contract
    #: accepted returns by (contract, period start, period end, partner): one each
    periods: set[tuple[str, date, date, str]] = field(default_factory=set)
    #: returns and exits grouped by contract, so one contract's entry is built from its own
    returns_of: dict[str, dict[str, MonitoringReturnSubmitted]] = field(default_factory=dict)
    exits_of: dict[str, dict[str, ContractMemberExited]] = field(default_factory=dict)
    #: contracts an event changed since the register's view last looked (`RegisterView`)
    touched: set[str] = field(default_factory=set)


def evolve(reg: Register, key: str, payload: Payload) -> Register:
    """Fold one accepted event; folding it again changes nothing (every part is keyed by the
    event, or keeps the version that ranks first), so no per-event set is kept."""
    reg.touched.add(payload.contract_id)
    match payload:
        case TenderAwarded():
            old = reg.awards.get(payload.contract_id)
            if old is None or key > old[0]:
                reg.awards[payload.contract_id] = (key, payload)
        case ContractSlaAgreed():
            rank, slot = (payload.revision, key), (payload.contract_id, payload.partner_id)
            if slot not in reg.slas or rank > reg.slas[slot][0]:
                reg.slas[slot] = (rank, payload)
        case MonitoringReturnSubmitted():
            reg.returns[key] = payload
            reg.returns_of.setdefault(payload.contract_id, {})[key] = payload
            reg.periods.add(
                (payload.contract_id, payload.period_start, payload.period_end, payload.partner_id)
            )
        case ContractReviewRecorded():
            rank, reviews = (payload.revision, key), reg.reviews.setdefault(payload.contract_id, {})
            if payload.review_for not in reviews or rank > reviews[payload.review_for][0]:
                reviews[payload.review_for] = (rank, payload)
        case DecommissioningProposed():
            old = reg.proposals.get(payload.contract_id)
            if old is None or key < old[0]:  # one is accepted; the smaller key, whatever the order
                reg.proposals[payload.contract_id] = (key, payload)
        case ContractMemberExited():
            reg.exits.setdefault((payload.contract_id, payload.partner_id), payload)
            reg.exits_of.setdefault(payload.contract_id, {}).setdefault(payload.partner_id, payload)
        case ContractDecommissioned():
            drank = decommission_rank(key, payload)
            if (
                payload.contract_id not in reg.decommissions
                or drank < reg.decommissions[payload.contract_id][0]
            ):
                reg.decommissions[payload.contract_id] = (drank, payload)
        case _:
            raise TypeError(f"the contracts register does not use {type(payload).__name__}")
    return reg


def decommission_rank(key: str, payload: ContractDecommissioned) -> tuple[date, bool, str]:
    """Which decommissioning of a contract stands: the earliest; at equal dates a partner's
    before this service's own `contract_end` (derived from the dates, it never stands in the
    way of the lead's decision: whether it was published before the lead's arrived depends only
    on timing), then the smaller key."""
    return (payload.effective_date, key.startswith(f"{SOURCE} "), key)


def sla_of(reg: Register, contract_id: str) -> ContractSlaAgreed | None:
    """The contract's SLA: the highest revision, and only from its lead partner."""
    award = reg.awards.get(contract_id)
    sla = reg.slas.get((contract_id, award[1].lead_partner_id)) if award else None
    return sla[1] if sla else None


def latest_of(reg: Register, contract_id: str) -> date | None:
    """The latest business date one contract's events carry."""
    dates = [r.period_end for r in reg.returns_of.get(contract_id, {}).values()]
    if (award := reg.awards.get(contract_id)) is not None:
        dates.append(award[1].contract_start)
    if (d := reg.decommissions.get(contract_id)) is not None:
        dates.append(d[1].effective_date)
    dates += [
        x.notice_date for x in reg.exits_of.get(contract_id, {}).values()
    ]  # it takes effect when the dates get there
    return max(dates, default=None)


# -- the partners' requests, decided (shared.authority; docs/authority.md) -------------------


def check_request(reg: Register, policy: ContractsPolicy, payload: Payload) -> Verdict:
    """Who may do what on a contract: the lead states the SLA, returns on the contract and
    decommissions it; a member returns on its own schedule and may leave its own part with
    the contract's notice; nobody else acts on it. Periods and dates lie inside the term."""
    cid, by = payload.contract_id, payload.partner_id
    award = reg.awards.get(cid)
    if award is None:
        return Wait("unknown_contract", f"no contract '{cid}' has been awarded")
    a = award[1]
    lead = a.lead_partner_id
    if by != lead and by not in {p.partner_id for p in a.partners}:
        raise Refused("not_a_partner", f"{by} is neither the lead nor a partner on {cid}")
    sla = sla_of(reg, cid)
    decommissioned = reg.decommissions.get(cid, (None, None))[1]
    by_a_partner = cid in reg.decommissions and not reg.decommissions[cid][0][1]
    term = f"the term {a.contract_start}..{a.contract_end}"
    match payload:
        case ContractSlaAgreed():
            if by != lead:
                raise Refused("not_the_lead", f"only {lead}, the lead, states the SLA of {cid}")
            return ()
        case MonitoringReturnSubmitted():
            return _check_return(reg, payload, a, sla, decommissioned)
        case ContractDecommissioned():
            if by != lead:
                raise Refused(
                    "not_the_lead",
                    f"only {lead}, the lead, may decommission {cid}; "
                    "a member leaves its own part with contract.member.exited",
                )
            if by_a_partner:  # the service's own `contract_end` gives way to it
                raise Refused(
                    "already_decommissioned", f"{cid} is decommissioned from {decommissioned.effective_date}"
                )
            if not a.contract_start <= payload.effective_date <= a.contract_end + DAY:
                raise Refused("outside_term", f"effective date {payload.effective_date} is outside {term}")
            return (f"decommission:{cid}",)
        case ContractMemberExited():
            if by == lead:
                raise Refused(
                    "lead_cannot_exit",
                    f"{lead} leads {cid}: it ends the whole contract with contract.decommissioned",
                )
            if (cid, by) in reg.exits:
                raise Refused("already_exited", f"{by} has already left {cid}")
            if decommissioned is not None and decommissioned.effective_date <= payload.effective_date:
                raise Refused(
                    "contract_decommissioned", f"{cid} is decommissioned from {decommissioned.effective_date}"
                )
            if payload.notice_date < a.contract_start or payload.effective_date > a.contract_end:
                raise Refused(
                    "outside_term",
                    f"notice {payload.notice_date} and effect {payload.effective_date} "
                    f"must lie inside {term}",
                )
            months = (
                sla.exit_notice_months
                if sla and sla.exit_notice_months is not None
                else policy.exit_notice_months
            )
            if payload.effective_date < add_months(payload.notice_date, months):
                raise Refused(
                    "short_notice",
                    f"{cid} requires {months} months' notice: given on {payload.notice_date}, "
                    f"it takes effect on {add_months(payload.notice_date, months)} at the earliest",
                )
            return (f"exit:{cid}:{by}",)
        case ContractReviewRecorded():
            return _check_review(reg, payload, a, lead)
        case DecommissioningProposed():
            if by != lead:
                raise Refused("not_the_lead", f"only {lead}, the lead, may propose to decommission {cid}")
            if by_a_partner:
                raise Refused(
                    "already_decommissioned", f"{cid} is decommissioned from {decommissioned.effective_date}"
                )
            if cid in reg.proposals:
                raise Refused(
                    "already_proposed",
                    f"{cid} already has a decommissioning proposal, effective "
                    f"{reg.proposals[cid][1].effective_date}",
                )
            if not a.contract_start <= payload.proposed_on < payload.effective_date <= a.contract_end + DAY:
                raise Refused(
                    "outside_term",
                    f"proposed on {payload.proposed_on}, effective {payload.effective_date}: "
                    f"both must lie in {term}",
                )
            return (f"proposal:{cid}",)
    raise TypeError(f"the contracts service does not decide {type(payload).__name__}")


def _check_review(reg: Register, payload: ContractReviewRecorded, a: TenderAwarded, lead: str) -> Verdict:
    """The lead records a review, for an anniversary of the start inside the term, held no
    sooner than the notice before it (seed 004 §4.28: three months) and inside the term."""
    cid = a.contract_id
    if payload.partner_id != lead:
        raise Refused("not_the_lead", f"only {lead}, the lead, records the reviews of {cid}")
    if payload.review_for not in (due := anniversaries(a.contract_start, a.contract_end)):
        days = ", ".join(d.isoformat() for d in due) or "none inside the term"
        raise Refused(
            "not_an_anniversary",
            f"{payload.review_for} is not an anniversary of {cid}'s start inside its term ({days})",
        )
    opens = add_months(payload.review_for, -REVIEW_NOTICE_MONTHS)
    if not opens <= payload.held_on <= a.contract_end:
        raise Refused(
            "outside_review_window",
            f"the review for {payload.review_for} is held from {opens} (its notice) to {a.contract_end}, "
            f"not on {payload.held_on}",
        )
    standing = reg.reviews.get(cid, {}).get(payload.review_for)
    if standing is not None and payload.revision <= standing[1].revision:
        raise Refused(
            "already_recorded",
            f"the review of {cid} for {payload.review_for} is recorded at revision "
            f"{standing[1].revision}: send a higher revision to change it",
        )
    return (f"review:{cid}:{payload.review_for}:{payload.revision}",)


def _check_return(
    reg: Register,
    ret: MonitoringReturnSubmitted,
    a: TenderAwarded,
    sla: ContractSlaAgreed | None,
    decommissioned: ContractDecommissioned | None,
) -> Verdict:
    cid, by = ret.contract_id, ret.partner_id
    if ret.period_start < a.contract_start or ret.period_end > a.contract_end:
        raise Refused(
            "outside_term",
            f"the period {ret.period_start}..{ret.period_end} is outside the term "
            f"{a.contract_start}..{a.contract_end}",
        )
    if decommissioned is not None and ret.period_start >= decommissioned.effective_date:
        raise Refused(
            "contract_decommissioned",
            f"{cid} was decommissioned from {decommissioned.effective_date} ({decommissioned.reason})",
        )
    if by == a.lead_partner_id:
        terms = kpi_terms(sla, by)
    else:
        schedule = next((x for x in sla.schedules if x.partner_id == by), None) if sla else None
        if schedule is None:
            raise Refused(
                "no_schedule", f"{by} has no schedule of its own on {cid}: the lead returns on the contract"
            )
        left = reg.exits.get((cid, by))
        if left is not None and ret.period_start >= left.effective_date:
            raise Refused("partner_exited", f"{by} left {cid} on {left.effective_date}")
        if ret.management_cost is not None:
            raise Refused(
                "not_the_lead", f"only {a.lead_partner_id}, the lead, reports the cost of managing {cid}"
            )
        terms = {k.kpi_id: k for k in schedule.kpis}
    if (cid, ret.period_start, ret.period_end, by) in reg.periods:
        raise Refused(
            "duplicate_period", f"{by} has already returned {ret.period_start}..{ret.period_end} on {cid}"
        )
    unknown = [k.kpi_id for k in ret.kpis if sla is not None and k.kpi_id not in terms]
    if unknown:
        raise Refused("unknown_kpi", f"the SLA does not define {', '.join(unknown)} for {by}")
    return (f"return:{cid}:{ret.period_start}:{ret.period_end}:{by}",)


# -- judging returns ------------------------------------------------------------------------


def frequency_months(award: TenderAwarded, sla: ContractSlaAgreed | None) -> int:
    if sla is not None and sla.monitoring is not None:
        return {"quarterly": 3, "half_yearly": 6, "annual": 12}[sla.monitoring]
    if award.annual_value < 25_000:
        return 12
    return 6 if award.annual_value < 100_000 else 3


def kpi_terms(sla: ContractSlaAgreed | None, partner_id: str) -> dict[str, KpiTerm]:
    """The KPIs a return from `partner_id` answers: the SLA's, plus the partner's own schedule."""
    if sla is None:
        return {}
    terms = {k.kpi_id: k for k in sla.kpis}
    for schedule in sla.schedules:
        if schedule.partner_id == partner_id:
            terms.update({k.kpi_id: k for k in schedule.kpis})
    return terms


def rating(
    actual: Decimal, target: Decimal, higher_is_better: bool, policy: ContractsPolicy
) -> tuple[Decimal, str]:
    if higher_is_better:
        ratio = Decimal(1) if target == 0 else actual / target
    else:
        ratio = Decimal(1) if actual == 0 else target / actual
    if ratio >= 1:
        return ratio, "on_target"
    if ratio >= policy.approaching:
        return ratio, "approaching_target"
    if ratio >= policy.requires_improvement:
        return ratio, "requires_improvement"
    return ratio, "inadequate"


@dataclass(frozen=True)
class Judged:
    key: str
    ret: MonitoringReturnSubmitted  # accepted by the service (a refused one is on P:rejected:<partner>)
    ratings: tuple[dict[str, Any], ...] = ()
    ratios: tuple[Decimal, ...] = ()  # exact actual / target per KPI, for payments


def judge(reg: Register, policy: ContractsPolicy, contract_id: str | None = None) -> list[Judged]:
    """Every accepted return (of one contract, or all), its KPIs rated against the SLA (the
    lead's KPIs, or the member's own schedule), else against the targets the return states."""
    returns = reg.returns if contract_id is None else reg.returns_of.get(contract_id, {})
    out: list[Judged] = []
    for key, ret in sorted(returns.items()):
        terms = kpi_terms(sla_of(reg, ret.contract_id), ret.partner_id)
        ratings, ratios = [], []
        for k in ret.kpis:
            term = terms.get(k.kpi_id)
            target = term.target if term else k.target
            ratio, rated = rating(k.actual, target, term.higher_is_better if term else True, policy)
            ratios.append(ratio)
            ratings.append(
                {
                    "kpi_id": k.kpi_id,
                    "target": str(target),
                    "actual": str(k.actual),
                    "achievement": str(ratio.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
                    "rating": rated,
                }
            )
        out.append(Judged(key, ret, ratings=tuple(ratings), ratios=tuple(ratios)))
    return out


# -- what follows from the judged returns ---------------------------------------------------


def concerns(judged: list[Judged], policy: ContractsPolicy) -> dict[str, dict[str, Any]]:
    """Performance concerns per contract and KPI, walking accepted returns in period order."""
    series: dict[tuple[str, str], list[tuple[date, str]]] = {}
    for j in judged:
        for r in j.ratings:
            series.setdefault((j.ret.contract_id, r["kpi_id"]), []).append((j.ret.period_end, r["rating"]))
    out: dict[str, dict[str, Any]] = {}
    for (contract_id, kpi_id), points in sorted(series.items()):
        open_: dict[str, Any] | None = None
        for period_end, rated in sorted(points):
            if open_ is None:
                if rated != "on_target":
                    cid = f"{contract_id}-{kpi_id}-{period_end.isoformat()}"
                    open_ = {
                        "concern_id": cid,
                        "contract_id": contract_id,
                        "kpi_id": kpi_id,
                        "raised_for": period_end.isoformat(),
                        "rating": rated,
                        "status": "raised",
                        "improvement_plan_due": (
                            period_end + timedelta(days=policy.improvement_days)
                        ).isoformat(),
                        "history": [{"period_end": period_end.isoformat(), "rating": rated}],
                        "transitions": [("raised", period_end.isoformat(), rated)],
                    }
                    out[cid] = open_
                continue
            open_["history"].append({"period_end": period_end.isoformat(), "rating": rated})
            open_["rating"] = rated
            if rated == "on_target":
                open_["status"] = "resolved"
                open_["transitions"].append(("resolved", period_end.isoformat(), rated))
                open_ = None
            elif (
                period_end.isoformat() > open_["improvement_plan_due"]
                and open_["status"] != "termination_considered"
            ):
                # raised -> escalated -> termination considered, the last resort; it stays there
                open_["status"] = "escalated" if open_["status"] == "raised" else "termination_considered"
                open_["transitions"].append((open_["status"], period_end.isoformat(), rated))
    return out


def payments(reg: Register, judged: list[Judged]) -> dict[str, dict[str, Any]]:
    out = {}
    for j in judged:
        if j.ret.partner_id != reg.awards[j.ret.contract_id][1].lead_partner_id:
            continue  # payments follow the contract's returns, the lead's; a member's are its own KPIs
        sla = sla_of(reg, j.ret.contract_id)
        if sla is None or sla.payment_by_results is None:
            continue
        award = reg.awards[j.ret.contract_id][1]
        pbr = sla.payment_by_results
        days = (j.ret.period_end - j.ret.period_start).days + 1
        value = award.annual_value * days / 365
        ratios = [min(r, Decimal(1)) for r in j.ratios]
        achievement = sum(ratios, Decimal(0)) / len(ratios) if ratios else Decimal(1)
        if achievement < pbr.floor:
            achievement = Decimal(0)
        at_risk = round_money(value * pbr.share)
        fixed = round_money(value) - at_risk  # fixed + at risk is the period's value, to the penny
        outcome = round_money(value * pbr.share * achievement)
        pid = f"{j.ret.contract_id}-{j.ret.period_start.isoformat()}"
        out[pid] = {
            "payment_id": pid,
            "contract_id": j.ret.contract_id,
            "supplier_id": award.supplier.id,
            "period_start": j.ret.period_start.isoformat(),
            "period_end": j.ret.period_end.isoformat(),
            "fixed_payment": money_str(fixed),
            "results_at_risk": money_str(at_risk),
            "results_payment": money_str(outcome),
            "total": money_str(fixed + outcome),
            "achievement": str(achievement.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
        }
    return out


def schedule(award: TenderAwarded, sla: ContractSlaAgreed | None, until: date) -> list[tuple[date, date]]:
    months = frequency_months(award, sla)
    periods, k = [], 0
    while True:
        a = add_months(award.contract_start, months * k)
        if a > award.contract_end or a >= until:
            return periods
        periods.append((a, min(add_months(award.contract_start, months * (k + 1)) - DAY, award.contract_end)))
        k += 1


@dataclass(frozen=True)
class ContractEntry:
    """One contract's entry in the register and what follows from its returns."""

    row: dict[str, Any]  # the register entry the read API shows
    judged: list[Judged]
    concerns: dict[str, dict[str, Any]]
    payments: dict[str, dict[str, Any]]
    #: the first later "today" at which the entry reads differently (a return falls overdue,
    #: the contract ends or its decommissioning takes effect); None: none, or no today yet
    next_change: date | None = None


def contract_entry(reg: Register, policy: ContractsPolicy, cid: str, today: date | None) -> ContractEntry:
    """One contract: status, SLA, schedule, returns, concerns, payments, as of `today`."""
    a = reg.awards[cid][1]
    sla = sla_of(reg, cid)
    judged = judge(reg, policy, cid)
    its_concerns = concerns(judged, policy)
    its_payments = payments(reg, judged)
    d = reg.decommissions.get(cid, (None, None))[1]
    if d is not None and d.effective_date > a.contract_end:
        d = None  # after the contract's own end (as `contract_end` is): it changes nothing
    stop = min(d.effective_date, a.contract_end + DAY) if d else a.contract_end + DAY
    if d is not None and today is not None and d.effective_date <= today:
        status = "decommissioned"
    elif today is not None and a.contract_end < today:
        status = "ended"
    else:
        status = "active"

    def periods_of(partner: str, until: date) -> list[dict[str, Any]]:
        ends = [j.ret.period_end for j in judged if j.ret.partner_id == partner]
        rows = []
        for p0, p1 in schedule(a, sla, until):
            due = p1 + timedelta(days=policy.grace_days)
            rows.append(
                {
                    "period_start": p0.isoformat(),
                    "period_end": p1.isoformat(),
                    "due": due.isoformat(),
                    "status": "received"
                    if any(p0 <= e <= p1 for e in ends)
                    else ("overdue" if today is not None and due < today else "pending"),
                }
            )
        return rows

    exits = reg.exits_of.get(cid, {})
    member_schedules = {
        x.partner_id: periods_of(
            x.partner_id, min(stop, exits[x.partner_id].effective_date) if x.partner_id in exits else stop
        )
        for x in (sla.schedules if sla else ())
        if x.partner_id != a.lead_partner_id
    }
    row = {
        "contract_id": cid,
        "tender_id": a.tender_id,
        "status": status,
        "lead_partner_id": a.lead_partner_id,
        "commissioning_model": a.commissioning_model,
        "supplier": a.supplier.model_dump(),
        "annual_value": money_str(a.annual_value),
        "contract_start": a.contract_start.isoformat(),
        "contract_end": a.contract_end.isoformat(),
        "partners": [p.model_dump(mode="json") for p in a.partners],
        "sla": sla.model_dump(mode="json") if sla else None,
        "monitoring_months": frequency_months(a, sla),
        "schedule": periods_of(a.lead_partner_id, stop),
        "member_schedules": member_schedules,
        "exits": [x.model_dump(mode="json") for _, x in sorted(exits.items())],
        "returns": [judged_row(j) for j in judged],
        "concerns": [{k: v for k, v in c.items() if k != "transitions"} for c in its_concerns.values()],
        "payments": list(its_payments.values()),
        "decommissioning": d.model_dump(mode="json") if d else None,
        "reviews": [r.model_dump(mode="json") for _, (_, r) in sorted(reg.reviews.get(cid, {}).items())],
        "decommissioning_proposal": _proposal(reg, cid, d, today),
        "ends_without_renewal": d is None and today is not None and a.contract_end < today,
    }
    return ContractEntry(row, judged, its_concerns, its_payments, _next_change(row, today))


def _proposal(
    reg: Register, cid: str, d: ContractDecommissioned | None, today: date | None
) -> dict[str, Any] | None:
    """The planned decommissioning, with where it stands: `consulting` until its consultation
    ends, then `proposed`, `decommissioned` once the lead's decommissioning is accepted."""
    if cid not in reg.proposals:
        return None
    p = reg.proposals[cid][1]
    status = (
        "decommissioned"
        if d is not None
        else "consulting"
        if today is None or today < p.consultation.ended
        else "proposed"
    )
    return {**p.model_dump(mode="json"), "status": status}


def _next_change(row: dict[str, Any], today: date | None) -> date | None:
    if today is None:
        return None
    periods = [*row["schedule"], *(p for rows in row["member_schedules"].values() for p in rows)]
    dates = [date.fromisoformat(p["due"]) + DAY for p in periods if p["status"] == "pending"]
    dates.append(date.fromisoformat(row["contract_end"]) + DAY)
    if row["decommissioning"] is not None:
        dates.append(date.fromisoformat(row["decommissioning"]["effective_date"]))
    if row["decommissioning_proposal"] is not None:
        dates.append(date.fromisoformat(row["decommissioning_proposal"]["consultation"]["ended"]))
    return min((d for d in dates if d > today), default=None)


class RegisterView:
    """The register's entries, kept up to date incrementally: after a batch, only the contracts
    its events touched are built again, and, when "today" (the latest business date) moved
    forward, those that read differently by the new date (`ContractEntry.next_change`)."""

    def __init__(self, policy: ContractsPolicy) -> None:
        self.policy = policy
        self.as_of: date | None = None
        self.entries: dict[str, ContractEntry] = {}
        self._latest: dict[str, date] = {}
        self._of: Register | None = None

    def refresh(self, reg: Register) -> set[str] | None:
        """Bring the entries up to date with `reg`: the contracts built again, or None for all."""
        touched, reg.touched = reg.touched, set()
        everything = reg is not self._of
        if everything:
            self._of, self._latest, touched = reg, {}, set(reg.awards)
        for cid in touched:
            if (latest := latest_of(reg, cid)) is not None:
                self._latest[cid] = latest
        today = max(self._latest.values(), default=None)
        if today != self.as_of:
            if self.as_of is None or today is None or today < self.as_of:
                everything = True
            else:  # later: the contracts whose entries read differently by then
                touched |= {
                    cid
                    for cid, e in self.entries.items()
                    if e.next_change is not None and e.next_change <= today
                }
            self.as_of = today
        rebuild = set(reg.awards) if everything else touched & set(reg.awards)
        if everything:
            self.entries = {}
        for cid in sorted(rebuild):
            self.entries[cid] = contract_entry(reg, self.policy, cid, today)
        return None if everything else rebuild

    @property
    def view(self) -> dict[str, Any]:
        """As `register` gives it: as of, contracts, and the judged returns, concerns and payments."""
        entries = [self.entries[cid] for cid in sorted(self.entries)]
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "contracts": {e.row["contract_id"]: e.row for e in entries},
            "judged": sorted((j for e in entries for j in e.judged), key=lambda j: j.key),
            "concerns": {k: c for e in entries for k, c in sorted(e.concerns.items())},
            "payments": {k: p for e in entries for k, p in e.payments.items()},
        }


def register(reg: Register, policy: ContractsPolicy) -> dict[str, Any]:
    """The whole register: contracts with status, SLA, schedule, returns, concerns, payments."""
    whole, touched = RegisterView(policy), set(reg.touched)
    whole.refresh(reg)
    reg.touched = touched  # left for the service's own view
    return whole.view


def judged_row(j: Judged) -> dict[str, Any]:
    return {
        "return_key": j.key,
        "contract_id": j.ret.contract_id,
        "partner_id": j.ret.partner_id,
        "period_start": j.ret.period_start.isoformat(),
        "period_end": j.ret.period_end.isoformat(),
        "status": "accepted",
        "code": None,
        "message": None,
        "ratings": list(j.ratings),
        "spend": money_str(j.ret.spend),
        "management_cost": money_str(j.ret.management_cost) if j.ret.management_cost is not None else None,
    }
