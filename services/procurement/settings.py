"""The procurement service's settings: its policy, read from the environment (`COMMISSIONING_PROCUREMENT_*`)
here and nowhere else, and passed in."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.procurement.model import ProcurementPolicy


class ProcurementSettings(BaseSettings, ProcurementPolicy):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_PROCUREMENT_", extra="ignore", frozen=True)


def policy() -> ProcurementPolicy:
    return ProcurementSettings()
