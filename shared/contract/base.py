"""What every part of the contract shares: identifier and text types, the payload base."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
)

PartnerId = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")]
Ident = Annotated[StrictStr, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=2000)]
#: money as published by services: pounds with exactly 2 places, may be negative
MoneyText = Annotated[StrictStr, StringConstraints(pattern=r"^-?[0-9]+\.[0-9]{2}$")]

PARTNER_SOURCE = re.compile(r"^/partners/([a-z0-9-]{1,64})\Z")  # \Z: no trailing newline


class Payload(BaseModel):
    """Base of every payload: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    #: the field that must name the signing partner (a partner never acts for another)
    signer_field: ClassVar[str | None] = "partner_id"


def revision_of(payload: BaseModel) -> int:
    """A payload's `revision` (the highest stands), 0 for a type that has none. Read from the
    fields directly: a missing attribute costs pydantic an exception (13 us an event)."""
    return payload.__dict__.get("revision", 0)  # type: ignore[no-any-return]
