"""Reading with a viewer token and signing in (services/readauth.py) on the in-memory
`Credentials`, no Redis: the app's own routes over HTTP (an ASGI client): a token read as a
Bearer credential and signed in as a cookie, one revoked refused, a session that ends by itself,
and the store away answered 503 with a reason rather than an error.
(tests/integration/test_reads.py and test_oidc.py do the same with the whole service on Redis.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from services.http import Refusal, refused
from services.readauth import COOKIE, ReadAuth, Reader
from shared import viewers
from shared.adapters.memory import MemoryCredentials
from shared.partners import PartnerRegistry
from shared.ports import Unavailable


class Away(MemoryCredentials):
    """The store gone (Redis unreachable): every look fails."""

    async def name_of(self, token_digest: str) -> str | None:
        raise Unavailable("Connection refused")


def app_on(credentials: MemoryCredentials, registry: PartnerRegistry) -> FastAPI:
    reads = ReadAuth(credentials, registry)
    app = FastAPI()
    app.add_exception_handler(Refusal, refused)
    app.include_router(reads.routes())

    reader_needed = Depends(reads.api)  # a default, not Annotated: a local name (as services/savings/app.py)

    @app.get("/savings")
    async def savings(reader: Reader = reader_needed) -> dict[str, Any]:
        return {"reader": list(reader)}

    return app


async def call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kw)


@pytest.fixture
def registry(tmp_path: Path) -> PartnerRegistry:
    path = tmp_path / "partners.toml"
    path.write_text('[[partner]]\nid = "a-cc"\nname = "A"\nkind = "test"\nsecret = "secret-a"\n')
    return PartnerRegistry.load(path)


def test_a_viewer_token_reads_and_signs_in_until_it_is_revoked(registry: PartnerRegistry) -> None:
    async def scenario() -> None:
        credentials = MemoryCredentials()
        app = app_on(credentials, registry)
        token = await viewers.issue(credentials, "finance-team")

        bearer = await call(app, "GET", "/savings", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200 and bearer.json() == {"reader": ["viewer", "finance-team"]}
        nobody = await call(app, "GET", "/savings")
        assert nobody.status_code == 401 and nobody.json()["code"] == "unauthenticated"

        signed_in = await call(app, "POST", "/signin", content=f"token={token}".encode())
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard"
        assert f"{COOKIE}={token}" in signed_in.headers["set-cookie"]
        by_cookie = await call(app, "GET", "/savings", headers={"Cookie": f"{COOKIE}={token}"})
        assert by_cookie.json() == {"reader": ["viewer", "finance-team"]}

        wrong = await call(app, "POST", "/signin", content=b"token=cv1_not-issued")
        assert wrong.status_code == 401 and "invalid_token" in wrong.text

        assert await viewers.revoke(credentials, "finance-team") == 1
        revoked = await call(app, "GET", "/savings", headers={"Authorization": f"Bearer {token}"})
        assert revoked.status_code == 401

    asyncio.run(scenario())


def test_a_session_ends_by_itself(registry: PartnerRegistry) -> None:
    async def scenario() -> None:
        now = [1_000.0]
        credentials = MemoryCredentials(clock=lambda: now[0])
        app = app_on(credentials, registry)
        session = await viewers.issue_session(credentials, "oidc:ann@x.gov.uk", 3600)
        assert (
            await call(app, "GET", "/savings", headers={"Cookie": f"{COOKIE}={session}"})
        ).status_code == 200
        now[0] += 3601
        assert (
            await call(app, "GET", "/savings", headers={"Cookie": f"{COOKIE}={session}"})
        ).status_code == 401

    asyncio.run(scenario())


def test_the_store_away_is_a_503_on_sign_in_and_no_credential_on_reads(registry: PartnerRegistry) -> None:
    async def scenario() -> None:
        app = app_on(Away(), registry)
        signed_in = await call(app, "POST", "/signin", content=b"token=cv1_anything")
        assert signed_in.status_code == 503 and "unavailable" in signed_in.text
        read = await call(app, "GET", "/savings", headers={"Authorization": "Bearer cv1_anything"})
        assert read.status_code == 401, "refused, not an error: the reader tries again"

    asyncio.run(scenario())
