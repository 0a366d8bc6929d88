"""Sign-in with a council's identity provider (OpenID Connect), as a commissioner does it: in
Debian's headless Chromium, against a real provider in its own process (oidc-provider-mock,
built on Authlib: discovery, signed ID tokens, its own sign-in form) and a real `serve`.
Who the operator allowed reads; anyone else is told why on the page; a callback replayed or
forged is refused; revoking the name ends the session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import redis

from tests.support import READ, ROOT, Proc, free_port, serve, service_env, wait_for, write_partners

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ALLOWED = "ann@staffordshire.gov.uk,@stoke.gov.uk"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "oidc_provider_mock", "--port", str(port)], {}, tmp_path / "idp.log").start()
    issuer = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, 0.1, "the identity provider")
        yield issuer
    finally:
        proc.stop()


@pytest.fixture
def signed_in_server(provider: str, redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Proc]:
    env = service_env(
        redis_url, prefix, write_partners(tmp_path / "partners.toml"),
        oidc_issuer=provider, oidc_client_id="commissioning", oidc_client_secret="a-client-secret",
        oidc_allowed=ALLOWED, oidc_session_hours="1",
    )
    proc = serve(tmp_path, env, "savings")
    try:
        proc.wait_ready()
        proc.env = env
        yield proc
    finally:
        proc.stop()


def sign_in(page, url: str, who: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/workspace")  # not signed in: to the sign-in page
    page.click("#oidc")  # away to the provider, whose own form asks who it is
    page.fill("input[name=sub]", who)
    page.click("button[type=submit]:has-text('Authorize')")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_commissioner_signs_in_with_the_councils_account_and_others_are_told_why_not(
    signed_in_server: Proc, r: redis.Redis, prefix: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = signed_in_server.url
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ann = browser.new_page()
        callbacks: list[str] = []
        ann.on("request", lambda q: callbacks.append(q.url) if "/signin/oidc/callback" in q.url else None)
        sign_in(ann, url, "ann@staffordshire.gov.uk")
        expect(ann).to_have_url(f"{url}/workspace")
        expect(ann.locator("h1")).to_be_visible()
        ann.screenshot(path=str(ARTIFACTS / "oidc-signed-in.png"), full_page=True)
        [session] = [k for k in r.scan_iter(match=f"{prefix}:viewer-session:*")]
        assert r.get(session) == b"oidc:ann@staffordshire.gov.uk" and 0 < r.ttl(session) <= 3600

        # the same callback again (a replay): its state was used once and is gone
        replay = browser.new_context().new_page()
        replay.goto(callbacks[-1])
        expect(replay.locator("[role=alert]")).to_contain_text("unknown, expired")
        assert replay.locator("[role=alert]").get_attribute("data-code") == "unknown_state"
        # a forged callback: a state never issued
        forged = callbacks[-1].replace(parse_qs(urlparse(callbacks[-1]).query)["state"][0], "forged-state")
        assert httpx.get(forged).status_code == 401

        # someone the provider knows but the operator did not allow
        mallory = browser.new_context().new_page()
        sign_in(mallory, url, "mallory@example.com")
        expect(mallory.locator("[role=alert]")).to_contain_text("mallory@example.com may not read")
        assert mallory.locator("[role=alert]").get_attribute("data-code") == "not_allowed"
        mallory.screenshot(path=str(ARTIFACTS / "oidc-not-allowed.png"), full_page=True)
        mallory.goto(f"{url}/workspace")
        expect(mallory).to_have_url(f"{url}/signin")

        # a whole domain allowed
        bob = browser.new_context().new_page()
        sign_in(bob, url, "bob@stoke.gov.uk")
        expect(bob).to_have_url(f"{url}/workspace")

        # the operator revokes ann: her next page asks her to sign in again
        done = subprocess.run([sys.executable, "-m", "services.cli", "viewer", "revoke", "oidc:ann@staffordshire.gov.uk"],
                              env=signed_in_server.env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        ann.goto(f"{url}/workspace")
        expect(ann).to_have_url(f"{url}/signin")
        browser.close()
    assert httpx.get(f"{url}/savings", headers=READ).status_code == 200, "viewer tokens still work beside it"


def test_without_a_provider_configured_the_sign_in_says_so(redis_url: str, prefix: str, tmp_path: Path) -> None:
    proc = serve(tmp_path, service_env(redis_url, prefix, write_partners(tmp_path / "p.toml")), "savings")
    try:
        proc.wait_ready()
        page = httpx.get(f"{proc.url}/signin")
        assert page.status_code == 200 and b'id="oidc"' not in page.content
        missing = httpx.get(f"{proc.url}/signin/oidc")
        assert missing.status_code == 404 and b"not set up here" in missing.content
    finally:
        proc.stop()


def test_an_issuer_without_its_client_or_allowed_list_is_refused_at_start(redis_url: str, prefix: str,
                                                                          tmp_path: Path) -> None:
    env = service_env(redis_url, prefix, write_partners(tmp_path / "p.toml"), oidc_issuer="https://login.example.gov.uk")
    done = subprocess.run([sys.executable, "-m", "services.cli", "serve", "savings"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "COMMISSIONING_OIDC_ALLOWED" in done.stderr + done.stdout
