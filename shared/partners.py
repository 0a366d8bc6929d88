"""The partner registry (`COMMISSIONING_PARTNERS`, TOML) and HMAC-SHA256 signing."""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from shared.events import PartnerId

_HEX64 = re.compile(r"[0-9a-f]{64}")


class Partner(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PartnerId
    name: str
    kind: str = ""
    secret: SecretStr

    def sign(self, body: bytes) -> str:
        return sign(self.secret.get_secret_value(), body)

    def verifies(self, body: bytes, signature: str) -> bool:
        return verify(self.secret.get_secret_value(), body, signature)


class PartnerRegistryError(ValueError):
    pass


class PartnerRegistry:
    def __init__(self, partners: list[Partner]) -> None:
        ids = [p.id for p in partners]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise PartnerRegistryError(f"partner ids listed more than once: {', '.join(dupes)}")
        self._by_id = {p.id: p for p in partners}

    @classmethod
    def load(cls, path: Path) -> PartnerRegistry:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise PartnerRegistryError(
                f"partner registry {path} does not exist: set COMMISSIONING_PARTNERS to a TOML "
                "file listing [[partner]] entries (see deploy/partners.example.toml)"
            ) from e
        except OSError as e:  # a directory, or a mounted secret the process may not read
            raise PartnerRegistryError(f"partner registry {path} cannot be read: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise PartnerRegistryError(f"partner registry {path} is not valid TOML: {e}") from e
        try:
            partners = [Partner.model_validate(p) for p in doc.get("partner", [])]
        except ValidationError as e:
            # one line, and without pydantic's input values: they would print the secrets
            what = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise PartnerRegistryError(
                f"partner registry {path}: a [[partner]] entry is invalid: {what}"
            ) from e
        if not partners:
            raise PartnerRegistryError(f"partner registry {path} lists no [[partner]] entries")
        return cls(partners)

    def get(self, partner_id: str) -> Partner | None:
        return self._by_id.get(partner_id)

    def __iter__(self) -> Iterator[Partner]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


def sign(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of exactly `body`: what `openssl dgst -sha256 -hmac` prints."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Exactly 64 lower-case hex digits, as CONTRACT.md says: no upper case, no spaces."""
    return _HEX64.fullmatch(signature) is not None and hmac.compare_digest(sign(secret, body), signature)
