"""Sign-in with a council's own identity provider: OpenID Connect's authorization code flow
(with PKCE), through Authlib (the OAuth client, over httpx2) and joserfc (Authlib's JOSE library, which
checks the ID token's signature against the provider's published keys).

Configured by `COMMISSIONING_OIDC_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET` and `_ALLOWED` (the
e-mail addresses, or `@domain`s, that may read: nobody else, whatever the provider says). A
person who signs in gets a viewer session (shared.viewers) named `oidc:<e-mail>`, for
`COMMISSIONING_OIDC_SESSION_HOURS`; `commissioning viewer revoke oidc:<e-mail>` ends it early.

The state and nonce of each sign-in wait ten minutes (`Credentials.hold`; on Redis
`P:oidc:<state>`), read once: a callback with an unknown, expired or reused state is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shared import viewers
from shared.ports import Credentials

#: how long a sign-in may take between leaving for the provider and coming back
STATE_S = 600
#: the provider's configuration and keys are read again after this long
METADATA_S = 3600


class SignInRefused(Exception):
    """A sign-in that cannot go on: `code` for machines, the message for the person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    #: e-mail addresses and `@domain`s allowed to read (lower case)
    allowed: tuple[str, ...]
    session_s: int
    #: where the provider sends the person back (None: this server's /signin/oidc/callback)
    redirect_url: str | None = None

    def allows(self, email: str) -> bool:
        email = email.lower()
        return any(email == a or (a.startswith("@") and email.endswith(a)) for a in self.allowed)


def parse_allowed(text: str) -> tuple[str, ...]:
    return tuple(a.strip().lower() for a in text.split(",") if a.strip())


class Oidc:
    def __init__(self, settings: OidcSettings, credentials: Credentials) -> None:
        self.settings, self.credentials = settings, credentials
        self._metadata: tuple[float, dict[str, Any], KeySet] | None = None

    async def _provider(self) -> tuple[dict[str, Any], KeySet]:
        """The provider's configuration (OpenID Connect Discovery) and signing keys."""
        if self._metadata is not None and time.monotonic() - self._metadata[0] < METADATA_S:
            return self._metadata[1], self._metadata[2]
        issuer = self.settings.issuer.rstrip("/")
        try:
            async with httpx2.AsyncClient(timeout=10) as client:
                config = (
                    (await client.get(f"{issuer}/.well-known/openid-configuration")).raise_for_status().json()
                )
                keys = KeySet.import_key_set((await client.get(config["jwks_uri"])).raise_for_status().json())
        except (httpx2.HTTPError, KeyError, ValueError) as e:
            raise SignInRefused(
                "provider_unreachable", f"the identity provider at {issuer} did not answer as expected: {e}"
            ) from e
        self._metadata = (time.monotonic(), config, keys)
        return config, keys

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            self.settings.client_id,
            self.settings.client_secret,
            scope="openid email profile",
            redirect_uri=redirect_uri,
            token_endpoint_auth_method="client_secret_post",
            timeout=10,
        )

    async def begin(self, redirect_uri: str) -> str:
        """Where to send the person: the provider's authorization endpoint, with a fresh state,
        nonce and PKCE challenge (kept by `Credentials.hold` until the callback)."""
        config, _ = await self._provider()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(48)
        await self.credentials.hold(
            state, json.dumps({"nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}), STATE_S
        )
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                config["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
            )
        return str(url)

    async def finish(self, params: dict[str, str]) -> str:
        """The callback: check the state, exchange the code, verify the ID token, check the
        person may read. Returns the viewer name (`oidc:<e-mail>`)."""
        if "error" in params:
            raise SignInRefused(
                "provider_refused",
                f"the identity provider said: {params['error']} {params.get('error_description', '')}",
            )
        state, code = params.get("state", ""), params.get("code", "")
        if not state or not code or len(state) > 200 or len(code) > 2000:
            raise SignInRefused("bad_callback", "the provider's answer lacks a state or a code")
        raw = await self.credentials.take(state)
        if raw is None:
            raise SignInRefused(
                "unknown_state",
                "this sign-in is unknown, expired (ten minutes) or already used: sign in again",
            )
        pending = json.loads(raw)
        config, keys = await self._provider()
        try:
            async with self._client(pending["redirect_uri"]) as client:
                token = await client.fetch_token(
                    config["token_endpoint"], code=code, code_verifier=pending["verifier"]
                )
        except Exception as e:
            raise SignInRefused("code_exchange_failed", f"the provider did not exchange the code: {e}") from e
        id_token = token.get("id_token")
        if not id_token:
            raise SignInRefused("no_id_token", "the provider gave no ID token")
        try:
            claims = jwt.decode(id_token, keys).claims
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": config.get("issuer", self.settings.issuer)},
                aud={"essential": True, "value": self.settings.client_id},
                nonce={"essential": True, "value": pending["nonce"]},
                exp={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError) as e:
            raise SignInRefused("invalid_id_token", f"the ID token is not valid: {e}") from e
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
            raise SignInRefused("no_email", "the provider gave no verified e-mail address for this account")
        if not self.settings.allows(email):
            raise SignInRefused(
                "not_allowed",
                f"{email} may not read this partnership's figures: ask the operator to add it "
                "to COMMISSIONING_OIDC_ALLOWED",
            )
        return f"oidc:{email.lower()}"

    async def session(self, name: str) -> str:
        """A viewer session for `name` (its token, for the cookie)."""
        return await viewers.issue_session(self.credentials, name, self.settings.session_s)
