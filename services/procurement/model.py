"""The procurement model: route, tender lifecycle, evaluation and award. Pure functions of the
set of events; the lifecycle follows the business dates the events carry, so arrival order
never matters:

- a tender is open for bids from its `date` to its `closing_date`; a bid dated after it is
  refused (`tender_closed`), as is one for a cancelled tender;
- the lead's evaluation must be dated after the closing date (`tender_still_open`) and score
  every valid bid; it names the intended award and starts the standstill period;
- the lead confirms the award on or after the standstill's end (`standstill_not_over`); only
  then is `tender.awarded` published, with the evaluation's scores;
- anything from someone other than the lead is refused (`not_the_lead`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.authority import Refused, Verdict, Wait
from shared.contract.base import revision_of
from shared.dates import DAY, add_months
from shared.events import (
    AwardShare,
    BidSubmitted,
    NeedIdentified,
    NeedUpdated,
    NeedWithdrawn,
    OpportunityIdentified,
    Payload,
    TenderAwardConfirmed,
    TenderAwarded,
    TenderCancelRequested,
    TenderEvaluationSubmitted,
    TenderRequested,
)
from shared.money import gbp, money_str

LIGHT_TOUCH = (
    "advocacy",
    "debt-benefits-consumer-advice",
    "infrastructure-volunteering",
    "carers",
    "mental-health",
    "social-care",
    "health",
    "housing-support",
    "employment-support",
)


class ProcurementPolicy(BaseModel):
    """The routing table (DOMAIN.md's defaults), overridable per deployment."""

    model_config = ConfigDict(frozen=True)

    grant_below: Decimal = Decimal("10000")  # lifetime value of a small project
    quotation_below: Decimal = Decimal("25000")  # Milton Keynes framework
    sub_central_threshold: Decimal = Decimal("207720")
    central_threshold: Decimal = Decimal("135018")  # central government, NHS trusts included
    light_touch_threshold: Decimal = Decimal("663540")
    light_touch_categories: tuple[str, ...] = LIGHT_TOUCH
    lots_from: Decimal = Decimal("1000000")  # lifetime value from which lots are expected
    standstill_days: int = Field(default=10, ge=0, le=60)
    #: a bid below this fraction of the mean of the other bids is abnormally low
    abnormally_low: Decimal = Field(default=Decimal("0.70"), gt=0, lt=1)


def route(req: TenderRequested, lead_kind: str, policy: ProcurementPolicy) -> tuple[str, str, Decimal]:
    """(route, why, lifetime value) for a tender."""
    lifetime = req.estimated_annual_value * req.term_months / 12
    value = (
        f"{gbp(lifetime, whole=False)} lifetime value "
        f"({req.term_months} months at {gbp(req.estimated_annual_value, whole=False)} a year)"
    )
    if req.service_category in policy.light_touch_categories:
        threshold, regime = policy.light_touch_threshold, "light-touch regime for social and health services"
    elif lead_kind == "nhs":
        threshold, regime = policy.central_threshold, "central government threshold (NHS lead)"
    else:
        threshold, regime = policy.sub_central_threshold, "sub-central threshold"
    if lifetime >= threshold:
        name = "regulated_light_touch" if "light-touch" in regime else "regulated_open"
        why = f"{value} is at or above the {gbp(threshold, whole=False)} {regime}: the regulated procedure"
    elif lifetime >= policy.quotation_below:
        name, why = (
            "competitive_tender",
            (
                f"{value} is at or above {gbp(policy.quotation_below)} "
                f"and below the {gbp(threshold, whole=False)} {regime}"
            ),
        )
    elif req.kind == "project" and lifetime < policy.grant_below:
        name, why = "grant_funding", f"a small project: {value} is below {gbp(policy.grant_below)}"
    else:
        name, why = "request_for_quotations", f"{value} is below {gbp(policy.quotation_below)}"
    if lifetime >= policy.lots_from and not req.lots:
        why += f"; a contract this large should be offered in lots (from {gbp(policy.lots_from)})"
    return name, why, lifetime


# -- the index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeedVersion:
    rank: tuple[int, int, str]  # (revision, a withdrawal first, source id): the highest stands
    need: NeedIdentified | NeedWithdrawn


@dataclass
class Register:
    #: the needs service's decisions, read to judge awards: its accepted needs and the latest
    #: revision of each opportunity (who joined, declined or has not decided)
    needs: dict[tuple[str, str], NeedVersion] = field(default_factory=dict)
    opportunities: dict[str, OpportunityIdentified] = field(default_factory=dict)
    #: awards a lead partner sent and this service accepted, by contract
    partner_awards: dict[str, TenderAwarded] = field(default_factory=dict)
    requests: dict[str, list[tuple[str, TenderRequested]]] = field(default_factory=dict)
    bids: dict[str, BidSubmitted] = field(default_factory=dict)  # by event key
    evaluations: dict[str, TenderEvaluationSubmitted] = field(default_factory=dict)
    confirmations: dict[str, TenderAwardConfirmed] = field(default_factory=dict)
    cancellations: dict[str, TenderCancelRequested] = field(default_factory=dict)
    #: (partner, need) -> the opportunities whose latest revision records it declined: an
    #: award's check looks a share up here rather than walking every opportunity
    declines: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: the lifecycle events above (bids, evaluations, confirmations, cancellations) by tender,
    #: then event key: a tender's state reads its own, not every event of every tender (that
    #: made working out the tenders quadratic in their number)
    of_tender: dict[str, dict[str, Payload]] = field(default_factory=dict)


def evolve(reg: Register, key: str, payload: Payload) -> Register:
    """Fold one accepted event; folding it again changes nothing (no per-event set is kept:
    every part is keyed by the event or keeps the highest revision)."""
    match payload:
        case TenderRequested():
            requests = reg.requests.setdefault(payload.tender_id, [])
            if all(k != key for k, _ in requests):
                requests.append((key, payload))
                requests.sort(key=lambda kv: kv[0])
        case BidSubmitted():
            reg.bids[key] = reg.of_tender.setdefault(payload.tender_id, {})[key] = payload
        case TenderEvaluationSubmitted():
            reg.evaluations[key] = reg.of_tender.setdefault(payload.tender_id, {})[key] = payload
        case TenderAwardConfirmed():
            reg.confirmations[key] = reg.of_tender.setdefault(payload.tender_id, {})[key] = payload
        case TenderCancelRequested():
            reg.cancellations[key] = reg.of_tender.setdefault(payload.tender_id, {})[key] = payload
        case NeedUpdated() | NeedWithdrawn() | NeedIdentified():
            version = NeedVersion(
                (revision_of(payload), int(isinstance(payload, NeedWithdrawn)), key), payload
            )
            slot = (payload.partner_id, payload.need_id)
            if slot not in reg.needs or version.rank > reg.needs[slot].rank:
                reg.needs[slot] = version
        case OpportunityIdentified():  # and OpportunityUpdated
            old = reg.opportunities.get(payload.opportunity_id)
            if old is None or payload.revision > old.revision:
                reg.opportunities[payload.opportunity_id] = payload
                _index_declines(reg, old, payload)
        case TenderAwarded():
            reg.partner_awards.setdefault(payload.contract_id, payload)
        case _:
            raise TypeError(f"the procurement register does not use {type(payload).__name__}")
    return reg


# -- an award a lead partner sends (shared.authority; docs/authority.md) ----------------------


def _index_declines(reg: Register, old: OpportunityIdentified | None, new: OpportunityIdentified) -> None:
    for opp, index in ((old, False), (new, True)):
        for n in opp.needs if opp is not None else ():
            if n.decision == "declined":
                where = reg.declines.setdefault((n.partner_id, n.need_id), set())
                (where.add if index else where.discard)(opp.opportunity_id)


def declined(reg: Register, partner_id: str, need_id: str) -> str | None:
    """The opportunity in which the partner declined to share this need, if any (the first by id)."""
    return min(reg.declines.get((partner_id, need_id), ()), default=None)


def check_award(reg: Register, award: TenderAwarded, awarded: set[str]) -> Verdict:
    """The lead (the signer, checked by the gateway) is one of the partners; it names only
    needs that are identified, open to sharing and not declined (an open need counts as
    consent until declined); contributions, where given, come from every partner and sum to
    the annual value; a contract is awarded once."""
    cid = award.contract_id
    if cid in awarded or cid in reg.partner_awards:
        raise Refused("already_awarded", f"contract {cid} has already been awarded")
    wait = _check_shares(reg, award.lead_partner_id, award.partners, award.annual_value, "annual value")
    if wait is not None:  # judged again once one of its needs, or its contract, moves
        return replace(wait, on=frozenset([*_needs_of(award.partners), f"contract:{cid}"]))
    return (f"award:{cid}",)


def check_tender_request(reg: Register, req: TenderRequested) -> Verdict:
    """A tender is requested once, by its lead, for needs an award could name (as above); the
    contributions, where given, sum to its estimated annual value."""
    if req.tender_id in reg.requests:
        raise Refused("tender_exists", f"tender {req.tender_id} was already requested")
    wait = _check_shares(
        reg, req.partner_id, req.partners, req.estimated_annual_value, "estimated annual value"
    )
    if wait is not None:
        return replace(wait, on=frozenset([*_needs_of(req.partners), f"tender:{req.tender_id}"]))
    return (f"tender:{req.tender_id}",)


def _needs_of(shares: tuple[AwardShare, ...]) -> list[str]:
    return [f"need:{s.partner_id}/{s.need_id}" for s in shares]


def touches(payload: Payload) -> list[str] | None:
    """What a fact folded into the register touches, for requests told to wait on it
    (shared.authority `Wait.on`): a need (identified, updated, withdrawn, declined in an
    opportunity), a contract awarded, a tender requested; None (anything) for the rest of a
    tender's life, which can change what counts as awarded."""
    match payload:
        case NeedUpdated() | NeedWithdrawn() | NeedIdentified():
            return [f"need:{payload.partner_id}/{payload.need_id}"]
        case OpportunityIdentified():  # a decline is of a need it names
            return [f"need:{n.partner_id}/{n.need_id}" for n in payload.needs]
        case TenderAwarded():
            return [f"contract:{payload.contract_id}"]
        case TenderRequested():
            return [f"tender:{payload.tender_id}"]
        case _:
            return None


def _check_shares(
    reg: Register, lead: str, shares: tuple[AwardShare, ...], value: Decimal, what: str
) -> Wait | None:
    if lead not in {s.partner_id for s in shares}:
        raise Refused("lead_not_a_partner", f"the lead {lead} must be one of the contract's partners")
    given = [s.annual_contribution for s in shares if s.annual_contribution is not None]
    if given and (len(given) != len(shares) or sum(given, Decimal(0)) != value):
        raise Refused(
            "contributions_mismatch",
            f"contributions given must come from every partner and sum to the {what} "
            f"{gbp(value, whole=False)}; they sum to {gbp(sum(given, Decimal(0)), whole=False)} "
            f"from {len(given)} of {len(shares)} partners",
        )
    unread = []
    for s in shares:
        version = reg.needs.get((s.partner_id, s.need_id))
        if version is None:
            unread.append(f"{s.partner_id}/{s.need_id}")
        elif isinstance(version.need, NeedWithdrawn):
            raise Refused("need_withdrawn", f"{s.partner_id} has withdrawn need '{s.need_id}'")
        elif not version.need.open_to_sharing:
            raise Refused("need_not_open", f"{s.partner_id}'s need '{s.need_id}' is not open to sharing")
        elif (oid := declined(reg, s.partner_id, s.need_id)) is not None:
            raise Refused(
                "need_declined", f"{s.partner_id} declined opportunity {oid} for need '{s.need_id}'"
            )
    if unread:
        return Wait("unknown_need", f"no partner has identified these needs: {', '.join(unread)}")
    return None


def check_request(reg: Register, payload: Payload, awarded: set[str]) -> Verdict:
    if isinstance(payload, TenderRequested):
        return check_tender_request(reg, payload)
    return check_award(reg, payload, awarded)  # type: ignore[arg-type]


# -- the lifecycle --------------------------------------------------------------------------


@dataclass
class Refusal:
    key: str
    sender: str
    tender_id: str
    code: str
    message: str


def _q(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def evaluate(
    req: TenderRequested,
    bids: list[tuple[str, BidSubmitted]],
    ev: TenderEvaluationSubmitted,
    policy: ProcurementPolicy,
) -> dict[str, Any]:
    """Scores per lot: price (lowest eligible price / price x 100), quality and social value
    (the panel's), local (100 for a local provider); weighted; abnormally low bids excluded
    unless the panel accepted their explanation; ties go to higher quality, then the earlier
    submission, then the bid id."""
    scores = {s.bid_id: s for s in ev.scores}
    w = req.weighting
    lots: dict[str, Any] = {}
    for lot in [lt.lot_id for lt in req.lots] or [None]:
        entries = [(k, b) for k, b in bids if b.lot_id == lot]
        rows = []
        for k, b in entries:
            others = [o.annual_price for _, o in entries if o.bid_id != b.bid_id]
            low = bool(others) and b.annual_price < policy.abnormally_low * (
                sum(others, Decimal(0)) / len(others)
            )
            rows.append(
                {
                    "bid_id": b.bid_id,
                    "provider_id": b.provider_id,
                    "provider_name": b.provider_name,
                    "annual_price": money_str(b.annual_price),
                    "abnormally_low": low,
                    "excluded": low and b.bid_id not in ev.accept_abnormally_low,
                    "_bid": b,
                }
            )
        eligible = [r for r in rows if not r["excluded"]]
        best = min((r["_bid"].annual_price for r in eligible), default=None)
        for r in rows:
            b, s = r.pop("_bid"), scores[r["bid_id"]]
            if r["excluded"] or best is None:
                price = Decimal(0)
            elif b.annual_price == 0:
                price = Decimal(100)
            else:
                price = best / b.annual_price * 100
            local = Decimal(100) if b.local_provider else Decimal(0)
            total = (
                w.price * price + w.quality * s.quality + w.social_value * s.social_value + w.local * local
            ) / 100
            r.update(
                {
                    "price_score": _q(price),
                    "quality_score": _q(s.quality),
                    "social_value_score": _q(s.social_value),
                    "local_score": _q(local),
                    "total": _q(total),
                    "_rank": (-total, -s.quality, b.submitted_on, b.bid_id),
                }
            )
        rows.sort(key=lambda r: r["_rank"])
        for i, r in enumerate(rows):
            r.pop("_rank")
            r["rank"] = i + 1
        winner = next((r for r in rows if not r["excluded"]), None)
        tied = (
            winner is not None
            and sum(1 for r in rows if not r["excluded"] and r["total"] == winner["total"]) > 1
        )
        lots[lot or "-"] = {
            "lot_id": lot,
            "bids": rows,
            "winner": winner["bid_id"] if winner else None,
            "tie_broken": tied,
        }
    return lots


def _kind(events: dict[str, Payload], kind: type[Payload]) -> dict[str, Any]:
    return {k: p for k, p in events.items() if isinstance(p, kind)}


def tenders(
    reg: Register, policy: ProcurementPolicy, lead_kinds: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], list[Refusal]]:
    """Every tender's state, and every refused event with its reason."""
    refusals: list[Refusal] = []
    out: dict[str, dict[str, Any]] = {}

    def refuse(key: str, sender: str, tid: str, code: str, message: str) -> None:
        refusals.append(Refusal(key, sender, tid, code, message))

    for tid, requests in sorted(reg.requests.items()):
        (_, req), *_ = requests  # one: the service decides requests (`check_tender_request`)
        own = reg.of_tender.get(tid, {})  # this tender's lifecycle events, by kind
        own_bids: dict[str, BidSubmitted] = _kind(own, BidSubmitted)
        lead = req.partner_id
        name, why, lifetime = route(req, lead_kinds.get(lead, ""), policy)
        standstill = req.standstill_days if req.standstill_days is not None else policy.standstill_days

        def from_lead(items: dict[str, Any], tid: str = tid, lead: str = lead) -> list[tuple[str, Any]]:
            mine = []
            for k, p in sorted(items.items()):
                if p.tender_id != tid:
                    continue
                if p.partner_id != lead:
                    refuse(
                        k, p.partner_id, tid, "not_the_lead", f"only {lead}, the lead, may do that for {tid}"
                    )
                else:
                    mine.append((k, p))
            return mine

        cancels = [c for _, c in from_lead(_kind(own, TenderCancelRequested)) if c.date >= req.date]
        cancelled = min(cancels, key=lambda c: c.date) if cancels else None
        cancelled_on = cancelled.date if cancelled else None

        valid_bids: dict[tuple[str, str | None], tuple[str, BidSubmitted]] = {}
        lot_ids = {lt.lot_id for lt in req.lots}
        for k, b in sorted(own_bids.items()):
            problem = None
            if cancelled_on and b.submitted_on >= cancelled_on:
                problem = ("tender_cancelled", f"{tid} was cancelled on {cancelled_on}")
            elif b.submitted_on < req.date:
                problem = ("tender_not_open", f"{tid} opens on {req.date}")
            elif b.submitted_on > req.closing_date:
                problem = (
                    "tender_closed",
                    f"{tid} closed on {req.closing_date}; the bid is dated {b.submitted_on}",
                )
            elif (b.lot_id is None) != (not lot_ids) or (b.lot_id and b.lot_id not in lot_ids):
                problem = (
                    "unknown_lot",
                    f"{tid} has lots {sorted(lot_ids) or 'none'}; the bid names {b.lot_id}",
                )
            elif b.consortium and not req.consortia_allowed:
                problem = ("consortia_not_allowed", f"{tid} does not accept consortium bids")
            elif b.subcontractors and not req.subcontracting_allowed:
                problem = ("subcontracting_not_allowed", f"{tid} does not allow subcontracting")
            if problem:
                refuse(k, b.provider_id, tid, *problem)
                continue
            slot = (b.provider_id, b.lot_id)  # a provider's latest bid for a lot replaces its earlier one
            if slot not in valid_bids or (b.submitted_on, k) > (
                valid_bids[slot][1].submitted_on,
                valid_bids[slot][0],
            ):
                valid_bids[slot] = (k, b)
        bids = sorted(valid_bids.values(), key=lambda kb: kb[1].bid_id)

        evaluation = None
        for k, ev in sorted(
            from_lead(_kind(own, TenderEvaluationSubmitted)), key=lambda kv: (kv[1].revision, kv[0])
        ):
            missing = sorted({b.bid_id for _, b in bids} - {s.bid_id for s in ev.scores})
            if ev.date <= req.closing_date:
                refuse(
                    k,
                    lead,
                    tid,
                    "tender_still_open",
                    f"{tid} closes on {req.closing_date}; evaluation is after that",
                )
            elif cancelled_on and ev.date >= cancelled_on:
                refuse(k, lead, tid, "tender_cancelled", f"{tid} was cancelled on {cancelled_on}")
            elif missing:
                refuse(
                    k,
                    lead,
                    tid,
                    "bids_not_scored",
                    f"every bid must be scored; missing: {', '.join(missing)}",
                )
            else:
                evaluation = ev  # the highest revision that is valid stands
        results = evaluate(req, bids, evaluation, policy) if evaluation else None
        standstill_end = evaluation.date + timedelta(days=standstill) if evaluation else None

        award = None
        for k, c in sorted(from_lead(_kind(own, TenderAwardConfirmed)), key=lambda kv: (kv[1].date, kv[0])):
            if results is None:
                refuse(
                    k, lead, tid, "tender_not_evaluated", f"{tid} has no evaluation yet: it cannot be awarded"
                )
            elif cancelled_on and c.date >= cancelled_on:
                refuse(k, lead, tid, "tender_cancelled", f"{tid} was cancelled on {cancelled_on}")
            elif standstill_end and c.date < standstill_end:
                refuse(k, lead, tid, "standstill_not_over", f"the standstill period runs to {standstill_end}")
            elif not any(lot["winner"] for lot in results.values()):
                refuse(k, lead, tid, "no_eligible_bid", f"{tid} has no eligible bid to award")
            elif award is not None:
                refuse(k, lead, tid, "already_awarded", f"{tid} was awarded on {award.date}")
            else:
                award = c

        status = (
            "cancelled"
            if cancelled and not award
            else "awarded"
            if award
            else "standstill"
            if results
            else "open"
        )
        out[tid] = {
            "request": req,
            "route": name,
            "route_reason": why,
            "lifetime_value": _q(lifetime),
            "status": status,
            "bids": bids,
            "evaluation": evaluation,
            "results": results,
            "standstill_end": standstill_end,
            "award": award,
            "cancelled": cancelled,
            "closed": results is not None
            or any(b.submitted_on > req.closing_date for b in own_bids.values()),
        }
    for k, p in sorted({**reg.bids, **reg.evaluations, **reg.confirmations, **reg.cancellations}.items()):
        if p.tender_id not in reg.requests:
            sender = getattr(p, "provider_id", None) or p.partner_id
            refuse(k, sender, p.tender_id, "unknown_tender", f"no tender {p.tender_id} has been requested")
    return out, refusals


def _shares(shares: tuple[AwardShare, ...], price: Decimal) -> list[dict[str, Any]]:
    """The award's partners: the tender's estimated contributions, in proportion, scaled to the
    price won (in pence, largest remainder first, ties by position), so they sum to it."""
    rows = [{"partner_id": s.partner_id, "need_id": s.need_id} for s in shares]
    estimated = [
        int(s.annual_contribution * 100) if s.annual_contribution is not None else None for s in shares
    ]
    if None in estimated or not sum(estimated):  # type: ignore[arg-type]
        return rows
    whole, total = int(price * 100), sum(estimated)  # type: ignore[arg-type]
    parts = [divmod(whole * e, total) for e in estimated]  # type: ignore[operator]
    pence = [q for q, _ in parts]
    for i in sorted(range(len(parts)), key=lambda i: (-parts[i][1], i))[: whole - sum(pence)]:
        pence[i] += 1
    return [
        {**row, "annual_contribution": money_str(Decimal(p) / 100)}
        for row, p in zip(rows, pence, strict=True)
    ]


def awards(tid: str, t: dict[str, Any]) -> list[dict[str, Any]]:
    """The `tender.awarded` payloads (one per lot), exactly the contract's."""
    req, c = t["request"], t["award"]
    if c is None:
        return []
    out = []
    end = add_months(req.contract_start, req.term_months) - DAY
    for lot in t["results"].values():
        winner = next(r for r in lot["bids"] if r["bid_id"] == lot["winner"])
        suffix = f"-{lot['lot_id']}" if lot["lot_id"] else ""
        out.append(
            {
                "tender_id": tid,
                "contract_id": c.contract_id + suffix,
                "lead_partner_id": req.partner_id,
                "commissioning_model": req.commissioning_model,
                "supplier": {"id": winner["provider_id"], "name": winner["provider_name"]},
                "annual_value": winner["annual_price"],
                "contract_start": req.contract_start.isoformat(),
                "contract_end": end.isoformat(),
                # contributions are for the whole contract, rescaled to the price won so that they sum
                # to its annual value; a lot's contract names the partners only
                "partners": _shares(req.partners, Decimal(winner["annual_price"]))
                if not suffix
                else [{"partner_id": p.partner_id, "need_id": p.need_id} for p in req.partners],
            }
        )
    return out
