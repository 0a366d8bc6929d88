"""The contracts service's settings: its policy, read from the environment (`COMMISSIONING_CONTRACTS_*`)
here and nowhere else, and passed in."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.contracts.model import ContractsPolicy


class ContractsSettings(BaseSettings, ContractsPolicy):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_CONTRACTS_", extra="ignore", frozen=True)


def policy() -> ContractsPolicy:
    return ContractsSettings()
