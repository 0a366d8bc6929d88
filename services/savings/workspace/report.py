"""The quarterly report to the joint committee (seeds 000 §4.2, 003 Monitor & Review): savings,
ROI, performance, concerns and the decisions needed, from the same views the pages show, so
its figures are the live view's. As CSV (one figure a row) and as PDF (WeasyPrint renders the
report's own template)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.savings.workspace.model import ContractRow, Overview, Pipeline
from shared.money import money_str

OPTION_NAMES = {
    "aligned_budgets": "lead commissioner (aligned budgets)",
    "stand_alone_partnership": "partnership (stand-alone)",
    "do_nothing": "do nothing",
}


@dataclass(frozen=True)
class Decision:
    subject: str
    needed: str
    by: date | None


@dataclass(frozen=True)
class Report:
    quarter: str  # e.g. "2013 Q2 (April to June)": the quarter holding as_of
    as_of: date | None
    overview: Overview
    underperforming: tuple[ContractRow, ...]
    overdue: tuple[ContractRow, ...]
    contracts: tuple[ContractRow, ...]
    decisions: tuple[Decision, ...]


QUARTERS = ("January to March", "April to June", "July to September", "October to December")


def quarter_of(d: date | None) -> str:
    if d is None:
        return "no business date yet"
    q = (d.month - 1) // 3
    return f"{d.year} Q{q + 1} ({QUARTERS[q]})"


def build(overview: Overview, rows: tuple[ContractRow, ...], pipe: Pipeline) -> Report:
    today = overview.as_of
    decisions: list[Decision] = []
    for e in pipe.ends:
        if e.within_planning and e.what == "contract":
            advice = (
                f"; the appraisal recommends {OPTION_NAMES.get(e.recommendation, e.recommendation)}"
                if e.recommendation
                else ""
            )
            decisions.append(
                Decision(
                    e.subject, f"recommission, extend or decommission ({e.who}): it ends{advice}", e.when
                )
            )
    for r in rows:
        if r.review_notice and today and r.review_notice <= today:
            decisions.append(
                Decision(r.contract_id, "annual review due: notice period has begun", r.next_review)
            )
        for missing in r.reviews_missing:
            decisions.append(Decision(r.contract_id, "annual review not recorded", missing))
        if r.proposal is not None and r.status != "decommissioned":
            p = r.proposal
            decisions.append(
                Decision(
                    r.contract_id,
                    f"decommissioning proposed ({p.reason.replace('_', ' ')}; consultation "
                    f"{p.consultation.started} to {p.consultation.ended}, "
                    f"{p.impact.service_users_affected} service users affected): confirm or withdraw",
                    p.effective_date,
                )
            )
        for c in r.concerns:
            if c.status == "termination considered":
                decisions.append(
                    Decision(
                        r.contract_id,
                        f"termination considered: {c.kpi_id} still below target",
                        c.improvement_plan_due,
                    )
                )
    for o in pipe.opportunities:
        if o.status in ("proposed", "open") and o.contract is None:
            a = o.appraisal
            decisions.append(
                Decision(
                    o.opportunity_id,
                    f"agree the option: the appraisal recommends "
                    f"{OPTION_NAMES.get(a.recommendation, a.recommendation)}",
                    o.window_start,
                )
            )
    decisions.sort(key=lambda d: (d.by or date.max, d.subject))
    return Report(
        quarter_of(today),
        today,
        overview,
        tuple(r for r in rows if r.underperforming),
        tuple(r for r in rows if r.overdue),
        rows,
        tuple(decisions),
    )


def _m(x: Decimal | None) -> str:
    return "" if x is None else money_str(x)


def to_csv(report: Report) -> str:
    """One figure a row: section, subject, measure, value (money in pounds with pence)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "subject", "measure", "value"])
    o = report.overview
    w.writerow(["report", "partnership", "quarter", report.quarter])
    w.writerow(["report", "partnership", "as_of", report.as_of.isoformat() if report.as_of else ""])
    for measure, value in (
        ("baseline_annual_cost", o.baseline_annual_cost),
        ("shared_annual_cost", o.shared_annual_cost),
        ("annual_saving", o.annual_saving),
        ("investment", o.investment),
        ("projected_saving", o.projected_saving),
        ("realised_saving", o.realised_saving),
        ("roi", o.roi),
        ("npv_3_5_percent", o.npv),
    ):
        w.writerow(["savings", "partnership", measure, _m(value)])
    for p in o.partners:
        for measure, value in (
            ("annual_saving", p.annual_saving),
            ("shared_cost_share", p.shared_cost_share),
            ("realised_saving", p.realised_saving),
            ("projected_saving", p.projected_saving),
            ("investment", p.investment),
            ("roi", p.roi),
        ):
            w.writerow(["partner", p.name, measure, _m(value)])
    for r in report.contracts:
        w.writerow(["performance", r.contract_id, "rag", r.rag])
        w.writerow(["performance", r.contract_id, "returns_received", r.returns_received])
        w.writerow(["performance", r.contract_id, "returns_overdue", len(r.overdue)])
        w.writerow(["performance", r.contract_id, "open_concerns", len(r.concerns)])
        for k in r.kpis:
            w.writerow(["kpi", f"{r.contract_id}/{k.kpi_id}", "rating", f"{k.rag} ({k.rating}, {k.trend})"])
        for c in r.concerns:
            w.writerow(
                ["concern", f"{r.contract_id}/{c.kpi_id}", c.status, c.improvement_plan_due.isoformat()]
            )
    for d in report.decisions:
        w.writerow(["decision", d.subject, d.needed, d.by.isoformat() if d.by else ""])
    return out.getvalue()


class PdfUnavailable(RuntimeError):
    pass


def to_pdf(html: str) -> bytes:
    try:
        from weasyprint import HTML  # imported here: loading its text engine takes a second
    except OSError as e:  # WeasyPrint loads Pango (a system library) when imported
        raise PdfUnavailable(
            f"the PDF needs the Pango text library, which WeasyPrint could not load ({e}); "
            "install it (Debian: libpango-1.0-0 libpangoft2-1.0-0), or take the CSV"
        ) from e
    return HTML(string=html).write_pdf()  # type: ignore[no-any-return]
