"""The needs service's settings: its policy, read from the environment (`COMMISSIONING_NEEDS_*`)
here and nowhere else, and passed in."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.needs.model import NeedsPolicy


class NeedsSettings(BaseSettings, NeedsPolicy):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_NEEDS_", extra="ignore", frozen=True)


def policy() -> NeedsPolicy:
    return NeedsSettings()
