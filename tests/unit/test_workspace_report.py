"""The joint-committee report from the workspace views: the decisions it asks for and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal as D

from services.savings.workspace.appraisal import AppraisalPolicy
from services.savings.workspace.model import contracts, evolve, overview, pipeline, today_of
from services.savings.workspace.report import build, quarter_of, to_csv
from shared.policy import SavingsPolicy
from tests.unit.test_workspace_model import NAMES, entry, reference


def test_the_quarter_is_the_one_holding_the_figures_date() -> None:
    assert quarter_of(date(2013, 4, 1)) == "2013 Q2 (April to June)"
    assert quarter_of(date(2012, 12, 31)) == "2012 Q4 (October to December)"
    assert quarter_of(None) == "no business date yet"


def test_decisions_needed_and_one_figure_a_row() -> None:
    ws, n = reference()
    # on 15 October 2014: advocacy (ends 31 Mar 2015) is within twelve months; debt advice's
    # annual review (1 Jan 2015) is in its notice period (from 1 Oct 2014); infrastructure's
    # (1 Apr 2015) is not yet
    evolve(ws, entry(n, "investment.recorded", {"investment_id": "later", "partner_id": "staffordshire-cc",
                                                "date": "2014-10-15", "amount": "1.00"}))
    # debt advice's first review was recorded; the other anniversaries passed with none
    evolve(ws, entry(n + 1, "contract.review.recorded", {
        "contract_id": "tscip-debt-advice-2013", "partner_id": "staffordshire-cc", "review_for": "2014-01-01",
        "held_on": "2014-01-20", "rag": "green", "user_feedback": "good", "decision": "continue"}))
    today = today_of(ws)
    assert today == date(2014, 10, 15)
    over, rows = overview(ws, NAMES, SavingsPolicy()), contracts(ws, NAMES, today)
    r = build(over, rows, pipeline(ws, NAMES, rows, today, AppraisalPolicy()))
    assert r.quarter == "2014 Q4 (October to December)"
    # soonest first (no opportunity in this fold, so no option to agree)
    assert [(d.subject, d.by, d.needed.split(":")[0]) for d in r.decisions] == [
        ("tscip-advocacy-2012", date(2013, 4, 1), "annual review not recorded"),
        ("tscip-advocacy-2012", date(2014, 4, 1), "annual review not recorded"),
        ("tscip-infrastructure-2013", date(2014, 4, 1), "annual review not recorded"),
        ("tscip-debt-advice-2013", date(2015, 1, 1), "annual review due"),
        ("tscip-advocacy-2012", date(2015, 3, 31), "recommission, extend or decommission (Asist)")]
    rows_csv = list(csv.DictReader(io.StringIO(to_csv(r))))
    saving = next(x for x in rows_csv if x["section"] == "savings" and x["measure"] == "annual_saving")
    assert D(saving["value"]) == over.annual_saving
    county = {x["measure"]: x["value"] for x in rows_csv if x["subject"] == "Staffordshire County Council"}
    assert county["shared_cost_share"] == "33930.92" and county["investment"] == "603001.00"
