"""The partnership's accepted events as Open Contracting Data Standard 1.1 releases. Pure, no I/O.

One contracting process (`ocid` = prefix + tender id) per tender: its planning (the needs the
contract replaces, or the tender names), its tender (the procurement service's notices), its
awards and contracts (`tender.awarded`), implementation (each monitoring return's spend as a
transaction from the partner to the supplier) and termination (`contract.decommissioned`).
docs/ocds.md maps every field. A release's `date` is when its event reached the canonical
stream (the stream entry id's time), so the same streams always give the same releases.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from shared.money import gbp

#: the canonical streams the export reads (P:<type>); bids are on P:sealed:bid.submitted
TYPES = (
    "need.identified",
    "need.updated",
    "need.withdrawn",
    "tender.published",
    "tender.closed",
    "tender.cancelled",
    "tender.awarded",
    "monitoring.return.submitted",
    "contract.decommissioned",
)
BIDS = "bid.submitted"

_METHOD = {
    "regulated_open": "open",
    "regulated_light_touch": "open",
    "competitive_tender": "open",
    "request_for_quotations": "limited",
    "grant_funding": "direct",
}


@dataclass(frozen=True)
class Fact:
    """One accepted event: its stream entry id, type and data."""

    entry_id: str
    type: str
    data: dict[str, Any]

    @property
    def date(self) -> str:
        ms = int(self.entry_id.split("-")[0])
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Process:
    tender_id: str
    notices: list[Fact] = field(default_factory=list)
    awards: list[Fact] = field(default_factory=list)
    bids: list[Fact] = field(default_factory=list)
    returns: list[Fact] = field(default_factory=list)
    ends: list[Fact] = field(default_factory=list)


def _entry(entry_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in entry_id.split("-"))


def _amount(value: str | Decimal) -> dict[str, Any]:
    # OCDS amounts are JSON numbers; a float's shortest repr keeps the pennies as written
    return {"amount": float(Decimal(value)), "currency": "GBP"}


def _day(d: str) -> str:
    return f"{d}T00:00:00Z"


def _total(annual: str, start: str, end: str) -> Decimal:
    """A contract's whole value from its annual value and term (whole months, as tenders state it)."""
    s, e = date.fromisoformat(start), date.fromisoformat(end)
    months = (e.year - s.year) * 12 + e.month - s.month + (1 if e.day >= s.day - 1 else 0)
    return (Decimal(annual) * max(months, 1) / 12).quantize(Decimal("0.01"))


class Builder:
    def __init__(self, ocid_prefix: str, names: dict[str, str], public: bool) -> None:
        self.ocid_prefix = ocid_prefix
        self.names = names
        self.public = public

    def releases(self, facts: Iterable[Fact]) -> list[dict[str, Any]]:
        needs: dict[str, tuple[int, Fact]] = {}
        processes: dict[str, Process] = {}
        # Entry ids order events within a stream only (each stream counts from 0 in a
        # millisecond), so facts are taken in stage order and linked by id, never by position.
        facts = sorted(
            facts,
            key=lambda f: (
                TYPES.index(f.type) if f.type in TYPES else TYPES.index("tender.awarded"),
                _entry(f.entry_id),
            ),
        )
        contract_tender = {
            f.data["contract_id"]: f.data["tender_id"] for f in facts if f.type == "tender.awarded"
        }
        for f in facts:
            if f.type.startswith("need."):
                rev = int(f.data.get("revision", 0))
                if f.data["need_id"] not in needs or rev >= needs[f.data["need_id"]][0]:
                    needs[f.data["need_id"]] = (rev, f)
                continue
            tid = f.data.get("tender_id") or contract_tender.get(f.data.get("contract_id", ""))
            if tid is None:
                continue  # a return or an end of a contract this partnership never awarded
            p = processes.setdefault(tid, Process(tid))
            if f.type == "tender.awarded":
                p.awards.append(f)
            elif f.type == BIDS:
                p.bids.append(f)
            elif f.type == "monitoring.return.submitted":
                p.returns.append(f)
            elif f.type == "contract.decommissioned":
                p.ends.append(f)
            else:
                p.notices.append(f)
        live = {nid: f for nid, (_, f) in needs.items() if f.type != "need.withdrawn"}
        out: list[dict[str, Any]] = []
        for p in processes.values():
            out += self._process(p, live)
        return out

    # -- one contracting process ------------------------------------------------------------

    def _process(self, p: Process, needs: dict[str, Fact]) -> list[dict[str, Any]]:
        self._parties: dict[str, dict[str, Any]] = {}
        self._ocid = f"{self.ocid_prefix}-{p.tender_id}"
        self._lead: str | None = None
        shares = [s for a in p.awards for s in a.data["partners"]]
        published = next((n for n in p.notices if n.type == "tender.published"), None)
        if shares:
            planned = [needs[s["need_id"]] for s in shares if s["need_id"] in needs]
            self._lead = p.awards[0].data["lead_partner_id"]
        elif published is not None:
            named = set(published.data.get("partners", []))
            category = published.data.get("service_category")
            planned = [
                f
                for f in needs.values()
                if f.data["partner_id"] in named and f.data["service_category"] == category
            ]
            self._lead = published.data.get("lead_partner_id")
        else:
            planned = []
        # every party's roles over the whole process, so each release carries the same list
        for f in planned:
            self._role(f.data["partner_id"], "funder")
        if self._lead:
            self._role(self._lead, "buyer")
            self._role(self._lead, "procuringEntity")
        for a in p.awards:
            self._role(a.data["supplier"]["id"], "supplier", a.data["supplier"]["name"])
            self._role(a.data["supplier"]["id"], "payee")
        for r in p.returns:
            self._role(r.data["partner_id"], "payer")
        if not self.public:
            for b in p.bids:
                self._role(b.data["provider_id"], "tenderer", b.data["provider_name"])

        out = []
        if planned:
            out.append(self._planning(planned))
        for n in p.notices:
            out.append(self._tender(p, n))
        for a in p.awards:
            out.append(self._award(a))
            out.append(self._contract(a))
        for r in p.returns:
            out.append(self._implementation(r, p))
        for e in p.ends:
            out.append(self._termination(e))
        return out

    def _role(self, pid: str, role: str, name: str | None = None) -> None:
        party = self._parties.setdefault(
            pid, {"id": pid, "name": name or self.names.get(pid, pid), "roles": []}
        )
        if role not in party["roles"]:
            party["roles"].append(role)

    def _ref(self, pid: str) -> dict[str, str]:
        return {"id": pid, "name": self._parties[pid]["name"]}

    def _release(
        self, fact_id: str, date_: str, tag: str, refs: Iterable[str], **sections: Any
    ) -> dict[str, Any]:
        release = {
            "ocid": self._ocid,
            "id": f"{self._ocid}-{tag}-{fact_id}",
            "date": date_,
            "tag": [tag],
            "initiationType": "tender",
            "language": "en",
            "parties": [self._parties[pid] for pid in dict.fromkeys(refs)],
        }
        if self._lead:
            release["buyer"] = self._ref(self._lead)
        return release | sections

    def _planning(self, planned: list[Fact]) -> dict[str, Any]:
        latest = max(planned, key=lambda f: _entry(f.entry_id))
        arrangements = sum(int(f.data["current_arrangements"]) for f in planned)
        budget: dict[str, Any] = {
            "id": f"{self._ocid}-budget",
            "description": f"{len(planned)} partners' needs ({arrangements} current arrangements): "
            + "; ".join(
                f.data["need_id"]
                + ("" if self.public else f" {gbp(f.data['annual_budget'], whole=False)} a year")
                for f in planned
            ),
        }
        if not self.public:
            budget["amount"] = _amount(sum(Decimal(f.data["annual_budget"]) for f in planned))
        title = planned[0].data["title"]
        return self._release(
            latest.entry_id,
            latest.date,
            "planning",
            [self._lead or planned[0].data["partner_id"]] + [f.data["partner_id"] for f in planned],
            planning={
                "rationale": f"Shared commissioning of {title}: the partners' separate "
                "arrangements replaced by one contract",
                "budget": budget,
            },
            tender={"id": self._ocid, "title": title, "status": "planning"},
        )

    def _tender(self, p: Process, n: Fact) -> dict[str, Any]:
        d = n.data
        tender: dict[str, Any] = {"id": self._ocid}
        status = {"tender.published": "active", "tender.closed": "active", "tender.cancelled": "cancelled"}
        tender["status"] = status.get(n.type, "active")
        refs = [self._lead] if self._lead else []
        if n.type == "tender.published":
            tender |= {
                "title": d["title"],
                "mainProcurementCategory": "services",
                "procurementMethod": _METHOD.get(d.get("route", ""), "open"),
                "procurementMethodDetails": d.get("route_reason", ""),
                "value": _amount(d["lifetime_value"]),
                "tenderPeriod": {"startDate": _day(d["date"]), "endDate": _day(d["closing_date"])},
                "enquiryPeriod": {"endDate": _day(d["clarification_deadline"])},
            }
            if self._lead:
                tender["procuringEntity"] = self._ref(self._lead)
        if n.type == "tender.closed":
            tender["numberOfTenderers"] = int(d.get("bids_received", 0))
            if not self.public and p.bids:
                tender["tenderers"] = [self._ref(b.data["provider_id"]) for b in p.bids]
                refs += [b.data["provider_id"] for b in p.bids]
        return self._release(n.entry_id, n.date, "tender", refs, tender=tender)

    def _award(self, a: Fact) -> dict[str, Any]:
        d = a.data
        supplier = d["supplier"]["id"]
        award = {
            "id": f"{d['contract_id']}-award",
            "title": d["contract_id"],
            "status": "active",
            "date": a.date,
            "value": _amount(_total(d["annual_value"], d["contract_start"], d["contract_end"])),
            "suppliers": [self._ref(supplier)],
            "contractPeriod": {"startDate": _day(d["contract_start"]), "endDate": _day(d["contract_end"])},
        }
        return self._release(
            a.entry_id,
            a.date,
            "award",
            [self._lead or supplier, supplier],
            tender={"id": self._ocid, "status": "complete"},
            awards=[award],
        )

    def _contract(self, a: Fact) -> dict[str, Any]:
        d = a.data
        contract = {
            "id": d["contract_id"],
            "awardID": f"{d['contract_id']}-award",
            "title": d["contract_id"],
            "status": "active",
            "period": {"startDate": _day(d["contract_start"]), "endDate": _day(d["contract_end"])},
            "value": _amount(_total(d["annual_value"], d["contract_start"], d["contract_end"])),
            "description": f"{d['commissioning_model'].replace('_', ' ')}, "
            f"{gbp(d['annual_value'], whole=False)} a year, "
            f"{len(d['partners'])} partners' needs",
        }
        return self._release(
            a.entry_id, a.date, "contract", [self._lead or d["supplier"]["id"]], contracts=[contract]
        )

    def _implementation(self, r: Fact, p: Process) -> dict[str, Any]:
        d = r.data
        award = next(a for a in p.awards if a.data["contract_id"] == d["contract_id"])
        supplier = award.data["supplier"]["id"]
        transaction = {
            "id": f"{d['contract_id']}-{d['partner_id']}-{d['period_end']}",
            "date": _day(d["period_end"]),
            "value": _amount(d["spend"]),
            "payer": self._ref(d["partner_id"]),
            "payee": self._ref(supplier),
        }
        return self._release(
            r.entry_id,
            r.date,
            "implementation",
            [d["partner_id"], supplier],
            contracts=[
                {
                    "id": d["contract_id"],
                    "awardID": f"{d['contract_id']}-award",
                    "implementation": {"transactions": [transaction]},
                }
            ],
        )

    def _termination(self, e: Fact) -> dict[str, Any]:
        d = e.data
        contract = {
            "id": d["contract_id"],
            "awardID": f"{d['contract_id']}-award",
            "status": "terminated",
            "period": {"endDate": _day(d["effective_date"])},
            "description": f"ended {d['effective_date']}: {d['reason'].replace('_', ' ')}; "
            f"afterwards: {d['replacement'].replace('_', ' ')}",
        }
        return self._release(
            e.entry_id, e.date, "contractTermination", [d["partner_id"]], contracts=[contract]
        )
