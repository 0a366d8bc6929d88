"""Reads need a credential: the dashboard, the workspace (`/workspace...`), `GET /savings`,
`/savings/stream` and `/events/recent` answer only a viewer (a token from `commissioning viewer
issue`, sent as `Authorization: Bearer` or, from a browser, in the cookie `/signin` sets; or
signed in with the council's identity provider at `/signin/oidc`, services/oidc.py) or a
partner (the signed `Partner` header of shared.auth). With `COMMISSIONING_PUBLIC_TOTALS=true`
anyone may read the partnership's totals (`GET /savings` without a credential answers `as_of`
and `portfolio` only). A partner's own data (`/needs`, `/tenders`, `/contracts`...) answers the
signed `Partner` header only.

FastAPI dependencies, each declaring the security schemes it reads, so the OpenAPI schema says
what every route takes: `ReadAuth.api` (401 with a reason), `ReadAuth.page` (a browser is sent
to /signin), `ReadAuth.optional` (the route decides) and `signed_partner`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, PackageLoader, select_autoescape

from services.http import Reason, Refusal, answer, refusal, target
from services.oidc import Oidc, SignInRefused
from shared import viewers
from shared.auth import AuthError, authenticate
from shared.partners import PartnerRegistry
from shared.ports import Credentials, Unavailable

COOKIE = "commissioning_viewer"
MAX_FORM_BYTES = 4096

#: the ways to read, as the OpenAPI schema names them
VIEWER = HTTPBearer(
    scheme_name="viewer",
    description="A viewer token: `commissioning viewer issue NAME` prints one.",
    auto_error=False,
)
PARTNER = APIKeyHeader(
    name="Authorization",
    scheme_name="partner",
    description="`Partner <id>:<unix-seconds>:<hmac-hex>`: the lowercase hex HMAC-SHA256, under the "
    "partner's secret, of `METHOD\\nPATH?QUERY\\nUNIX-SECONDS` (within 300 s of the server's clock).",
    auto_error=False,
)
SIGNED_IN = APIKeyCookie(
    name=COOKIE,
    scheme_name="signed_in",
    description="A browser's session: set by /signin (a viewer token) or /signin/oidc (the "
    "council's identity provider).",
    auto_error=False,
)

#: the answers without a credential, for the schema
PARTNER_REFUSED = {401: {"model": Reason, "description": "Not signed, or a signature that does not verify"}}
UNAUTHENTICATED = {401: {"model": Reason, "description": "No credential, or one not valid"}}

#: who reads: ("viewer", name) or ("partner", partner id)
Reader = tuple[str, str]


def signed_partner(registry: PartnerRegistry) -> Callable[..., Awaitable[str]]:
    """The dependency of a partner's own data: the calling partner's id, or 401 with a reason."""

    async def partner(request: Request, authorization: Annotated[str | None, Security(PARTNER)]) -> str:
        try:
            return authenticate(registry, request.method, target(request), authorization)
        except AuthError as e:
            raise Refusal(refusal(e.code, str(e), 401)) from e

    return partner


def unauthenticated() -> Response:
    body = {
        "code": "unauthenticated",
        "message": "reading needs a credential: "
        "Authorization: Bearer <viewer token> (commissioning viewer issue NAME), "
        "or a signed Authorization: Partner header",
        "errors": [],
    }
    return answer(
        json.dumps(body).encode(),
        "application/json",
        401,
        {"Cache-Control": "no-store", "WWW-Authenticate": 'Bearer realm="commissioning"'},
    )


def to_signin() -> Response:
    return _redirect("/signin")


def _redirect(location: str, cookie: str | None = None) -> Response:
    headers = {"Location": location, "Cache-Control": "no-store"}
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return answer(b"", "text/plain", 303, headers)


def _cookie(token: str, max_age: int, secure: bool = False) -> str:
    # HttpOnly: page scripts never see it; SameSite=Strict: no other site's page can send it;
    # Secure over TLS (a plain-HTTP local `up` could not keep the cookie with it)
    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return value + ("; Secure" if secure else "")


class ReadAuth:
    def __init__(self, credentials: Credentials, registry: PartnerRegistry, oidc: Oidc | None = None) -> None:
        self.credentials, self.registry, self.oidc = credentials, registry, oidc
        self.optional = self._dependency(None)
        self.api = self._dependency(unauthenticated)
        self.page = self._dependency(to_signin)
        self.env = Environment(
            loader=PackageLoader("services", "templates"), autoescape=select_autoescape(["html"])
        )

    def _dependency(self, missing: Callable[[], Response] | None) -> Callable[..., Awaitable[Reader | None]]:
        async def reader(
            request: Request,
            viewer: Annotated[HTTPAuthorizationCredentials | None, Security(VIEWER)],
            partner: Annotated[str | None, Security(PARTNER)],
            cookie: Annotated[str | None, Security(SIGNED_IN)],
        ) -> Reader | None:
            found = await self.who(request, viewer, partner, cookie)
            if found is None and missing is not None:
                raise Refusal(missing())
            return found

        return reader

    async def who(
        self,
        request: Request,
        viewer: HTTPAuthorizationCredentials | None,
        partner: str | None,
        cookie: str | None,
    ) -> Reader | None:
        """Who is reading, or None: a Bearer token, else a signed Partner header, else the cookie."""
        try:
            if viewer is not None:
                name = await viewers.viewer(self.credentials, viewer.credentials.strip())
                return ("viewer", name) if name is not None else None
            if partner is not None and partner.startswith("Partner "):
                return ("partner", authenticate(self.registry, request.method, target(request), partner))
            if cookie is not None:
                name = await viewers.viewer(self.credentials, cookie)
                return ("viewer", name) if name is not None else None
        except (AuthError, Unavailable):
            return None
        return None

    def _page(self, status: int = 200, alert: str = "", code: str = "") -> Response:
        body = self.env.get_template("signin.html").render(alert=alert, code=code, oidc=self.oidc is not None)
        return answer(body.encode(), "text/html; charset=utf-8", status, {"Cache-Control": "no-store"})

    def routes(self) -> APIRouter:
        """Sign-in and sign-out: pages for people, so not in the API's schema."""
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/signin", self._signin_page, methods=["GET"])
        router.add_api_route("/signin", self._signin, methods=["POST"])
        router.add_api_route("/signout", self._signout, methods=["GET", "POST"])
        router.add_api_route("/signin/oidc", self._oidc_begin, methods=["GET"])
        router.add_api_route("/signin/oidc/callback", self._oidc_callback, methods=["GET"])
        return router

    async def _signin_page(self) -> Response:
        return self._page()

    async def _signout(self) -> Response:
        return _redirect("/signin", _cookie("", 0))

    async def _signin(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                break
        token = parse_qs(body[:MAX_FORM_BYTES].decode("latin-1")).get("token", [""])[0].strip()
        if not token:
            return self._page(
                401, "Enter the viewer token the operator gave you (it starts with cv1_).", "missing_token"
            )
        try:
            name = await viewers.viewer(self.credentials, token)
        except Unavailable:
            return self._page(503, "Sign-in is unavailable for a moment: try again.", "unavailable")
        if name is None:
            return self._page(401, "That token is not valid.", "invalid_token")
        return _redirect("/dashboard", _cookie(token, 30 * 86400, secure=request.url.scheme == "https"))

    def _no_oidc(self) -> Response:
        return self._page(404, "Sign-in with an identity provider is not set up here.", "oidc_not_configured")

    async def _oidc_begin(self, request: Request) -> Response:
        """Sign-in with the identity provider: away to it..."""
        if self.oidc is None:
            return self._no_oidc()
        host = request.headers.get("host", "localhost")
        redirect = self.oidc.settings.redirect_url or f"{request.url.scheme}://{host}/signin/oidc/callback"
        try:
            location = await self.oidc.begin(redirect)
        except SignInRefused as no:
            return self._page(401, f"Sign-in refused: {no}", no.code)
        except Unavailable:
            return self._page(503, "Sign-in is unavailable for a moment: try again.", "unavailable")
        return _redirect(location)

    async def _oidc_callback(self, request: Request) -> Response:
        """...then back with a session."""
        if self.oidc is None:
            return self._no_oidc()
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1")[:4096])
        try:
            name = await self.oidc.finish({k: v[0] for k, v in query.items()})
            token = await self.oidc.session(name)
        except SignInRefused as no:
            return self._page(401, f"Sign-in refused: {no}", no.code)
        except Unavailable:
            return self._page(503, "Sign-in is unavailable for a moment: try again.", "unavailable")
        cookie = _cookie(token, self.oidc.settings.session_s, secure=request.url.scheme == "https")
        return _redirect("/workspace", cookie)
