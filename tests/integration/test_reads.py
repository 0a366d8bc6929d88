"""Reads need a credential (issue 16): viewers issued by the operator, partners' signed
requests, a browser's sign-in cookie, and the explicit public view of the totals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from shared.auth import authorization
from tests.support import OWNERS, PARTNERS, READ, ROOT, serve, service_env

pytestmark = pytest.mark.integration
GUARDED = ("/savings", "/savings/stream", "/events/recent")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reads_need_a_viewer_or_partner_credential(
    r: redis.Redis, prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    env = service_env(redis_url, prefix, partners_path)
    proc = serve(tmp_path, env, "savings")
    try:
        proc.wait_ready()
        for path in GUARDED:
            answer = httpx.get(f"{proc.url}{path}", timeout=5)
            assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated", path
            assert answer.headers["www-authenticate"].startswith("Bearer")
            bad = httpx.get(f"{proc.url}{path}", headers={"Authorization": "Bearer cv1_guessed"}, timeout=5)
            assert bad.status_code == 401
        assert httpx.get(f"{proc.url}/savings", headers=READ).json()["portfolio"]
        page = httpx.get(f"{proc.url}/dashboard")
        assert page.status_code == 303 and page.headers["location"] == "/signin"
        assert httpx.get(f"{proc.url}/health/ready").status_code == 200, "health stays open"

        # a partner's signed request reads too
        header = authorization("tamworth-bc", PARTNERS["tamworth-bc"], "GET", "/events/recent?limit=3")
        assert (
            httpx.get(f"{proc.url}/events/recent?limit=3", headers={"Authorization": header}).status_code
            == 200
        )

        # the operator issues a token; Redis keeps only its digest; revoking refuses it at once
        issued = cli(env, "viewer", "issue", "finance-team")
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.splitlines()[1].strip()
        assert token.encode() not in b"".join(r.hgetall(f"{prefix}:viewers").keys())
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{proc.url}/savings", headers=bearer).status_code == 200
        assert "finance-team" in cli(env, "viewer", "list").stdout

        # a browser signs in with the form: an HttpOnly, same-site cookie, then the page loads
        with httpx.Client(base_url=proc.url) as browser:
            assert b'name="token"' in browser.get("/signin").content
            assert browser.post("/signin", data={"token": "cv1_wrong"}).status_code == 401
            signed_in = browser.post("/signin", data={"token": token})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
            cookie = signed_in.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert browser.get("/dashboard").status_code == 200
            assert browser.get("/savings").status_code == 200
            assert cli(env, "viewer", "revoke", "finance-team").returncode == 0
            assert browser.get("/savings").status_code == 401
        assert httpx.get(f"{proc.url}/savings", headers=bearer).status_code == 401
    finally:
        assert proc.terminate() == 0, proc.log()


def test_public_totals_show_the_portfolio_only_when_the_operator_says_so(
    prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path, public_totals="true"), "savings")
    try:
        proc.wait_ready()
        public = httpx.get(f"{proc.url}/savings").json()
        assert set(public) == {"as_of", "portfolio"}
        assert "partners" in httpx.get(f"{proc.url}/savings", headers=READ).json()
        assert httpx.get(f"{proc.url}/events/recent").status_code == 401
        assert httpx.get(f"{proc.url}/savings/stream").status_code == 401
    finally:
        assert proc.terminate() == 0, proc.log()


def test_the_served_openapi_schema_documents_the_read_api_and_its_credentials(
    prefix: str, redis_url: str, partners_path: Path, tmp_path: Path
) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path), *OWNERS, "savings")
    try:
        proc.wait_ready()
        served = httpx.get(f"{proc.url}/docs/openapi.json", timeout=10)
        assert served.status_code == 200 and served.headers["content-type"] == "application/json"
        schema = served.json()
        assert schema == json.loads((ROOT / "docs" / "openapi.json").read_text()), "docs/ is stale"
        paths = schema["paths"]
        readers = [{"viewer": []}, {"partner": []}, {"signed_in": []}]
        for path in GUARDED:
            assert paths[path]["get"]["security"] == readers, path
            assert "401" in paths[path]["get"]["responses"], path
        for path in ("/needs", "/tenders", "/contracts", "/contracts/{contract_id}"):
            assert paths[path]["get"]["security"] == [{"partner": []}], path
        assert "security" not in paths["/health/ready"]["get"] and "security" not in paths["/events"]["post"]
        assert {"application/cloudevents+json", "application/cloudevents-batch+json"} <= set(
            paths["/events"]["post"]["requestBody"]["content"]
        )
        assert "/dashboard" not in paths and "/signin" not in paths, "pages are not the API"

        # the event API's document is served as before, without the page's "try it out", which
        # would publish onto the streams unsigned
        assert httpx.get(f"{proc.url}/docs/asyncapi").headers["content-type"].startswith("text/html")
        events = httpx.get(f"{proc.url}/docs/asyncapi.json").json()
        assert f"{prefix}:inbound" in {c["address"] for c in events["channels"].values()}
        tried = httpx.post(f"{proc.url}/docs/asyncapi/try", json={"channelName": f"{prefix}:inbound"})
        assert tried.status_code in (404, 405)
    finally:
        assert proc.terminate() == 0, proc.log()
