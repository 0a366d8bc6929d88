"""The live savings page in a real browser (Debian's headless Chromium, driven by Playwright):
the reference partnership replayed shows £317,648, and a decommissioning updates the page
without a reload. A screenshot is saved to test-artifacts/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import redis

from shared.tscip import reference_payloads
from tests.portfolio import decommissioned, portfolio
from tests.support import (OWNERS, READ, ROOT, VIEWER_TOKEN, send_as, serve, service_env, wait_for,
                           write_tscip_partners)

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_shows_the_reference_figures_and_updates_live(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    proc = serve(tmp_path, service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml")), *OWNERS, "contracts", "savings")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        proc.wait_ready()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto(f"{proc.url}/dashboard")  # not signed in: sent to the sign-in form
            expect(page).to_have_url(f"{proc.url}/signin")
            page.fill("#token", "   ")  # passes the field's `required`, but is no token
            page.click("button[type=submit]")
            expect(page.locator("[role=alert]")).to_have_text(
                "Enter the viewer token the operator gave you (it starts with cv1_)."
            )
            assert page.locator("[role=alert]").get_attribute("data-code") == "missing_token"
            page.fill("#token", "not-a-token")
            page.click("button[type=submit]")
            expect(page.locator("[role=alert]")).to_have_text("That token is not valid.")
            page.fill("#token", VIEWER_TOKEN)
            page.click("button[type=submit]")  # an HttpOnly cookie; EventSource sends it (same origin)
            expect(page).to_have_url(f"{proc.url}/dashboard")
            assert page.evaluate("document.cookie") == "", "the page's scripts cannot read the credential"
            expect(page.locator("#status")).to_have_text("Live", timeout=10_000)

            for n, (pid, etype, data) in enumerate(reference_payloads("fifteen")):
                send_as(r, prefix, pid, etype, data, f"ref-{n}")
            expect(page.locator("#annual-saving")).to_have_text("£317,648", timeout=15_000)
            expect(page.locator("#roi")).to_have_text("58%")
            expect(page.locator("#as-of")).to_have_text("1 April 2013")
            expect(page.locator("#contracts tbody tr")).to_have_count(3)
            expect(page.locator("#partners tbody tr")).to_have_count(15)
            expect(page.locator("#partners tbody tr", has_text="Staffordshire County Council")).to_have_count(1)  # named
            expect(page.locator("#chart svg rect")).to_have_count(6)
            page.screenshot(path=str(ARTIFACTS / "dashboard-reference.png"), full_page=True)

            # a decommissioning: the page follows within a second or so, with no reload
            page.evaluate("window.__same_page = true")
            send_as(r, prefix, "staffordshire-cc", "contract.decommissioned", {
                "contract_id": "tscip-debt-advice-2013", "partner_id": "staffordshire-cc", "effective_date": "2014-06-30",
                "reason": "financial_constraints", "replacement": "separate_arrangements"}, "decommission")
            expect(page.locator("#annual-saving")).to_have_text("£221,148", timeout=5_000)  # 317,648 - 96,500
            row = page.locator("#contracts tbody tr", has_text="tscip-debt-advice-2013")
            expect(row).to_contain_text("decommissioned")
            expect(row.locator(".rag")).to_have_text("Red")
            # the update carried that contract only: the page merged it into its table
            assert [c["contract_id"] for c in json.loads(r.xrevrange(f"{prefix}:savings.updated", count=1)[0][1][b"event"])
                    ["data"]["contracts"]] == ["tscip-debt-advice-2013"]
            expect(page.locator("#contracts tbody tr")).to_have_count(3)
            # in the feed (the needs service may publish an opportunity after it: it paces that work)
            expect(page.locator("#events li", has_text="contract.decommissioned")).to_have_count(1)
            assert page.evaluate("window.__same_page") is True, "updated without a reload"
            page.screenshot(path=str(ARTIFACTS / "dashboard-decommissioned.png"), full_page=True)

            # keyboard and labels: the tables scroll regions take focus; every region is named
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.className") == "skip"
            assert not [u for u in requests if not u.startswith(proc.url)], "nothing fetched from elsewhere"

            # on a phone
            phone = browser.new_page(viewport={"width": 375, "height": 812})
            phone.context.add_cookies(page.context.cookies())  # signed in as on the desktop
            phone.goto(f"{proc.url}/dashboard")
            expect(phone.locator("#annual-saving")).to_have_text("£221,148", timeout=10_000)
            expect(phone.locator("#contracts tbody tr")).to_have_count(3)
            # from GET /savings, then the updates after it: a new investment moves the figures
            invested = phone.locator("#investment").inner_text()
            send_as(r, prefix, "staffordshire-cc", "investment.recorded", {
                "investment_id": "extra", "partner_id": "staffordshire-cc", "date": "2013-04-01",
                "amount": "1000.00", "description": "training"}, "invest")
            expect(phone.locator("#investment")).not_to_have_text(invested, timeout=5_000)
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)

            # the page says when it is disconnected, and reconnects by itself
            proc.terminate()
            expect(page.locator("#status")).to_have_text("Disconnected: reconnecting…", timeout=10_000)
            browser.close()
    finally:
        proc.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_with_many_contracts_the_page_merges_each_update_into_its_table(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    """300 contracts from `GET /savings`, then updates that carry one contract each: the row
    changes in place, a new contract takes its place in order, nothing else moves."""
    from playwright.sync_api import expect, sync_playwright

    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path), *OWNERS, "savings")
    try:
        proc.wait_ready()
        entries = portfolio(300)
        for e in entries:
            r.xadd(f"{prefix}:inbound", e)
        wait_for(lambda: httpx.get(f"{proc.url}/savings", headers=READ).json()["events_applied"] == len(entries),
                 60, what="the portfolio applied")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{proc.url}/signin")
            page.fill("#token", VIEWER_TOKEN)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{proc.url}/dashboard")
            rows = page.locator("#contracts tbody tr")
            expect(rows).to_have_count(300, timeout=10_000)
            expect(page.locator("#status")).to_have_text("Live", timeout=10_000)
            page.evaluate("window.__same_page = true")

            r.xadd(f"{prefix}:inbound", decommissioned(7))
            expect(rows.nth(7)).to_contain_text("decommissioned", timeout=5_000)
            for e in portfolio(1, first=150, suffix="a"):  # c-00150a: between c-00150 and c-00151
                r.xadd(f"{prefix}:inbound", e)
            expect(rows).to_have_count(301, timeout=5_000)
            expect(rows.nth(151)).to_contain_text("c-00150a")
            ids = page.eval_on_selector_all("#contracts tbody tr td:first-child",
                                            "cells => cells.map(c => c.textContent)")
            assert ids == sorted(ids) and len(set(ids)) == 301
            assert page.evaluate("window.__same_page") is True, "updated without a reload"
            browser.close()
    finally:
        assert proc.terminate() == 0, proc.log()


def test_the_sse_endpoint_replays_what_a_client_missed(r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, write_tscip_partners(tmp_path / "p.toml")), *OWNERS, "savings")
    try:
        proc.wait_ready()
        for n in range(3):
            r.xadd(f"{prefix}:savings.updated", {"event": json.dumps({"id": f"u{n}", "type": "savings.updated"})})
        first = r.xrange(f"{prefix}:savings.updated")[0][0].decode()
        with httpx.stream("GET", f"{proc.url}/savings/stream", headers={"Last-Event-ID": first, **READ},
                          timeout=10) as res:
            assert res.headers["content-type"].startswith("text/event-stream")
            ids = []
            for line in res.iter_lines():
                if line.startswith("data: "):
                    ids.append(json.loads(line[6:])["id"])
                if len(ids) == 2:
                    break
        assert ids == ["u1", "u2"]
        # a dashboard asks for the updates after the one its figures came from
        with httpx.stream("GET", f"{proc.url}/savings/stream?after={first}", headers=READ, timeout=10) as res:
            assert [json.loads(line[6:])["id"] for line in _lines(res, 2)] == ["u1", "u2"]
        # what it asks for was trimmed away: it is told to start again
        r.xtrim(f"{prefix}:savings.updated", maxlen=1, approximate=False)
        with httpx.stream("GET", f"{proc.url}/savings/stream?after={first}", headers=READ, timeout=10) as res:
            assert next(res.iter_lines()) == "event: reset"
        recent = httpx.get(f"{proc.url}/events/recent?limit=5", headers=READ).json()
        assert recent == {"events": []}
    finally:
        assert proc.terminate() == 0, proc.log()


def _lines(res: httpx.Response, n: int) -> list[str]:
    out = []
    for line in res.iter_lines():
        if line.startswith("data: "):
            out.append(line)
        if len(out) == n:
            return out
    return out
