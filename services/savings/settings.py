"""The savings service's settings: the workspace's appraisal policy, read from the environment
(`COMMISSIONING_APPRAISAL_*`) here and nowhere else, and passed in. (The savings policy itself,
shared with the needs service, is read by shared.settings.)"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.savings.workspace.appraisal import AppraisalPolicy


class AppraisalSettings(BaseSettings, AppraisalPolicy):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_APPRAISAL_", extra="ignore", frozen=True)


def appraisal_policy() -> AppraisalPolicy:
    return AppraisalSettings()
