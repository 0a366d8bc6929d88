"""`commissioning export ocds` on the canonical streams of real `commissioning serve` processes:
the reference partnership from its needs to a contract's early end, checked by libcoveocds."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from shared.tscip import ALL, ARRANGEMENTS, reference_payloads
from tests.ocdscheck import problems
from tests.support import READ, ROOT, send_as, serve, service_env, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration

LEAD = "staffordshire-cc"


def run_export(redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "export", "ocds", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url, **env},
    )


def test_the_reference_partnership_exports_as_valid_ocds_and_the_public_export_hides_budgets(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    partners = write_tscip_partners(tmp_path / "partners.toml")
    proc = serve(tmp_path, service_env(redis_url, prefix, partners)).wait_ready()
    try:
        for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
            send_as(r, prefix, pid, etype, data, f"ref-{n}")
        send_as(
            r,
            prefix,
            LEAD,
            "monitoring.return.submitted",
            {
                "contract_id": "tscip-debt-advice-2013",
                "partner_id": LEAD,
                "period_start": "2013-01-01",
                "period_end": "2013-03-31",
                "spend": "475000.00",
            },
            "return-1",
        )
        send_as(
            r,
            prefix,
            LEAD,
            "contract.decommissioned",
            {
                "contract_id": "tscip-advocacy-2012",
                "partner_id": LEAD,
                "effective_date": "2014-06-30",
                "reason": "financial_constraints",
                "replacement": "separate_arrangements",
            },
            "end-1",
        )
        wait_for(
            lambda: (
                r.xlen(f"{prefix}:contract.decommissioned") == 1
                and r.xlen(f"{prefix}:monitoring.return.submitted") == 1
                # the report's £317,648 less the advocacy contract's £81,441, ended
                and httpx.get(f"{proc.url}/savings", headers=READ).json()["portfolio"]["annual_saving"] == "236207.00"
            ),
            30,
            0.2,
            "every event accepted and applied",
        )
    finally:
        assert proc.terminate() == 0, proc.log()

    out = tmp_path / "ocds"
    env = {"COMMISSIONING_PARTNERS": str(partners)}
    done = run_export(
        redis_url,
        "--partnership",
        prefix,
        "--output",
        str(out),
        "--ocid-prefix",
        "ocds-abc123",
        "--publisher",
        "Staffordshire Third Sector Commissioning Partnership",
        **env,
    )
    assert done.returncode == 0, done.stderr
    release_package = json.loads((out / "release-package.json").read_text())
    assert "11 releases in 3 contracting processes" in done.stdout, " ".join(
        [x["ocid"][18:22] + x["tag"][0][:5] for x in release_package["releases"]]
    )

    record_package = json.loads((out / "record-package.json").read_text())
    assert problems(release_package) == {}, "zero errors from the Open Contracting Partnership's checker"
    assert problems(record_package) == {}
    records = {rec["ocid"]: rec["compiledRelease"] for rec in record_package["records"]}
    assert set(records) == {
        "ocds-abc123-tscip-advocacy",
        "ocds-abc123-tscip-debt-advice",
        "ocds-abc123-tscip-infrastructure",
    }

    advocacy = records["ocds-abc123-tscip-advocacy"]
    funders = [p for p in ALL if "advocacy" in ARRANGEMENTS[p]]
    want_budget = sum(float(ARRANGEMENTS[p]["advocacy"][2]) for p in funders)
    assert advocacy["planning"]["budget"]["amount"] == {"amount": want_budget, "currency": "GBP"}
    assert advocacy["buyer"] == {"id": LEAD, "name": "Staffordshire County Council"}
    assert advocacy["awards"][0]["suppliers"] == [{"id": "asist", "name": "Asist"}]
    [contract] = advocacy["contracts"]
    assert contract["status"] == "terminated" and contract["period"]["endDate"] == "2014-06-30T00:00:00Z"
    debt = records["ocds-abc123-tscip-debt-advice"]
    [transaction] = debt["contracts"][0]["implementation"]["transactions"]
    assert (transaction["payer"]["id"], transaction["value"]["amount"]) == (LEAD, 475000.0)
    assert len([p for p in debt["parties"] if "funder" in p["roles"]]) == 15

    # the CSV flattening of the same releases, one row per release
    with (out / "csv" / "releases.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11 and {row["ocid"] for row in rows} == set(records)
    assert (out / "csv" / "awards.csv").exists() and (out / "csv" / "parties.csv").exists()

    # the public export: the partners' budgets are left out, and it is still valid
    public = tmp_path / "public"
    done = run_export(
        redis_url, "--partnership", prefix, "--output", str(public), "--public", "--no-csv", **env
    )
    assert done.returncode == 0, done.stderr
    text = (public / "release-package.json").read_text()
    assert '"budget"' in text and "950000" not in text and "950,000" not in text
    assert problems(json.loads((public / "record-package.json").read_text())) == {}
    assert not (public / "csv").exists()


def test_an_unknown_partnership_is_refused_with_a_clear_error(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    done = run_export(redis_url, "--partnership", f"{prefix}-nobody", "--output", str(tmp_path / "x"))
    assert done.returncode == 2
    assert f"no partnership under the prefix '{prefix}-nobody'" in done.stderr
    assert "--partnership" in done.stderr
    assert not (tmp_path / "x").exists()
