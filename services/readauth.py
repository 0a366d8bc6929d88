"""Reads need a credential: the dashboard, the workspace (`/workspace...`), `GET /savings`, `/savings/stream` and `/events/recent`
answer only a viewer (a token from `commissioning viewer issue`, sent as `Authorization: Bearer`
or, from a browser, in the cookie `/signin` sets; or signed in with the council's identity
provider at `/signin/oidc`, services/oidc.py) or a partner (the signed `Partner` header of
shared.auth). With `COMMISSIONING_PUBLIC_TOTALS=true` anyone may read the partnership's totals
(`GET /savings` without a credential answers `as_of` and `portfolio` only).

An ASGI wrapper in front of the routes, so the endpoints themselves stay as they are.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.oidc import Oidc, SignInRefused
from shared import viewers
from shared.auth import AuthError, authenticate
from shared.partners import PartnerRegistry
from shared.streams import Streams

COOKIE = "commissioning_viewer"
PAGES = ("/", "/dashboard")
GUARDED = ("/savings", "/savings/stream", "/events/recent")
MAX_FORM_BYTES = 4096

SIGNIN = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto; padding: 0 1rem">
<h1>Shared commissioning: sign in</h1>%s
<form method="post" action="/signin"><p><label for="token">Viewer token</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" required size="48"></p>
<p><button type="submit">Sign in</button></p></form>
<p>Ask the operator for a token: <code>commissioning viewer issue YOUR-NAME</code>.</p>%s</body></html>"""
OIDC_LINK = b"""<p><a id="oidc" href="/signin/oidc">Sign in with your organisation's account</a></p>"""


def _guarded(path: str) -> bool:
    return path in PAGES or path.startswith(("/dashboard/", "/workspace")) or path in GUARDED


class ReadGuard:
    def __init__(
        self,
        app: Any,
        redis: Redis,
        streams: Streams,
        registry: PartnerRegistry,
        public_totals: bool = False,
        figures: Callable[[], dict[str, Any] | None] = lambda: None,
        oidc: Oidc | None = None,
    ) -> None:
        self.app, self.redis, self.streams, self.registry = app, redis, streams, registry
        self.public_totals, self.figures = public_totals, figures
        self.oidc = oidc

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif path == "/signin":
            await self._signin(scope, receive, send)
        elif path in ("/signin/oidc", "/signin/oidc/callback"):
            await self._oidc(scope, send)
        elif path == "/signout":
            await _answer(send, 303, b"", "text/plain", [(b"location", b"/signin"), _cookie("", 0)])
        elif not _guarded(path):
            await self.app(scope, receive, send)
        elif reader := await self._reader(scope):
            # who reads, for views that show a partner its own detail (the workspace's audit trail)
            await self.app({**scope, "reader": reader}, receive, send)
        elif path == "/savings" and self.public_totals and (figures := self.figures()):
            body = json.dumps({"as_of": figures.get("as_of"), "portfolio": figures["portfolio"]}).encode()
            await _answer(send, 200, body, "application/json")
        elif (
            path in PAGES
            or path.startswith("/dashboard")
            or (path.startswith("/workspace") and "." not in path)
        ):
            await _answer(send, 303, b"", "text/plain", [(b"location", b"/signin")])
        else:
            body = json.dumps(
                {
                    "code": "unauthenticated",
                    "message": "reading needs a credential: "
                    "Authorization: Bearer <viewer token> (commissioning viewer issue NAME), "
                    "or a signed Authorization: Partner header",
                    "errors": [],
                }
            ).encode()
            await _answer(
                send, 401, body, "application/json", [(b"www-authenticate", b'Bearer realm="commissioning"')]
            )

    async def _reader(self, scope: dict[str, Any]) -> tuple[str, str] | None:
        """Who is reading: ("viewer", name) or ("partner", partner id), or None."""
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        try:
            if auth.startswith("Bearer "):
                name = await viewers.viewer(self.redis, self.streams, auth.removeprefix("Bearer ").strip())
                return ("viewer", name) if name is not None else None
            if auth.startswith("Partner "):
                query = scope.get("query_string", b"").decode()
                target = scope["path"] + (f"?{query}" if query else "")
                return ("partner", authenticate(self.registry, scope.get("method", "GET"), target, auth))
            cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
            if COOKIE in cookie:
                name = await viewers.viewer(self.redis, self.streams, cookie[COOKIE].value)
                return ("viewer", name) if name is not None else None
        except (AuthError, RedisError):
            return None
        return None

    def _page(self, alert: str = "", code: str = "") -> bytes:
        shown = (
            f'<p role="alert" data-code="{html.escape(code)}" style="color: #a4161a">{html.escape(alert)}</p>'.encode()
            if alert
            else b""
        )
        return SIGNIN % (shown, OIDC_LINK if self.oidc is not None else b"")

    async def _oidc(self, scope: dict[str, Any], send: Any) -> None:
        """Sign-in with the identity provider: away to it, then back with a session."""
        if self.oidc is None:
            await _answer(
                send,
                404,
                self._page("Sign-in with an identity provider is not set up here.", "oidc_not_configured"),
                "text/html; charset=utf-8",
            )
            return
        secure = scope.get("scheme") == "https"
        try:
            if scope["path"] == "/signin/oidc":
                host = dict(scope.get("headers", [])).get(b"host", b"localhost").decode("latin-1")
                scheme = "https" if secure else "http"
                redirect = self.oidc.settings.redirect_url or f"{scheme}://{host}/signin/oidc/callback"
                location = await self.oidc.begin(redirect)
                await _answer(send, 303, b"", "text/plain", [(b"location", location.encode())])
                return
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")[:4096])
            name = await self.oidc.finish({k: v[0] for k, v in query.items()})
            token = await self.oidc.session(name)
        except SignInRefused as no:
            await _answer(
                send, 401, self._page(f"Sign-in refused: {no}", no.code), "text/html; charset=utf-8"
            )
            return
        except RedisError:
            await _answer(
                send,
                503,
                self._page("Sign-in is unavailable for a moment: try again.", "unavailable"),
                "text/html; charset=utf-8",
            )
            return
        cookie = _cookie(token, self.oidc.settings.session_s, secure=secure)
        await _answer(send, 303, b"", "text/plain", [(b"location", b"/workspace"), cookie])

    async def _signin(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("method") != "POST":
            await _answer(send, 200, self._page(), "text/html; charset=utf-8")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_FORM_BYTES or not message.get("more_body"):
                break
        token = parse_qs(body[:MAX_FORM_BYTES].decode("latin-1")).get("token", [""])[0].strip()
        try:
            name = await viewers.viewer(self.redis, self.streams, token)
        except RedisError:
            name = None
        if name is None:
            await _answer(
                send, 401, self._page("That token is not valid.", "invalid_token"), "text/html; charset=utf-8"
            )
            return
        cookie = _cookie(token, 30 * 86400, secure=scope.get("scheme") == "https")
        await _answer(send, 303, b"", "text/plain", [(b"location", b"/dashboard"), cookie])


def _cookie(token: str, max_age: int, secure: bool = False) -> tuple[bytes, bytes]:
    # HttpOnly: page scripts never see it; SameSite=Strict: no other site's page can send it;
    # Secure over TLS (a plain-HTTP local `up` could not keep the cookie with it)
    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return (b"set-cookie", (value + ("; Secure" if secure else "")).encode())


async def _answer(
    send: Any, status: int, body: bytes, content_type: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
