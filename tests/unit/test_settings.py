"""Settings are read in one place and passed in: each service's policy from its
`COMMISSIONING_<SERVICE>_*` variables in its settings module; the domain models read nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.contracts.model import ContractsPolicy
from services.contracts.settings import policy as contracts_policy
from services.needs.model import NeedsPolicy
from services.needs.settings import policy as needs_policy
from services.procurement.model import ProcurementPolicy
from services.procurement.settings import policy as procurement_policy
from shared.policy import SavingsPolicy
from shared.settings import savings_policy


def test_each_policy_is_read_from_its_variables_by_its_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMISSIONING_CONTRACTS_GRACE_DAYS", "7")
    monkeypatch.setenv("COMMISSIONING_NEEDS_WINDOW_MONTHS", "6")
    monkeypatch.setenv("COMMISSIONING_PROCUREMENT_STANDSTILL_DAYS", "8")
    monkeypatch.setenv("COMMISSIONING_SAVINGS_DISCOUNT_RATE", "0.05")
    assert contracts_policy().grace_days == 7 and ContractsPolicy().grace_days == 30
    assert needs_policy().window_months == 6 and NeedsPolicy().window_months == 12
    assert procurement_policy().standstill_days == 8 and ProcurementPolicy().standstill_days == 10
    assert savings_policy().discount_rate == Decimal("0.05") and SavingsPolicy().discount_rate == Decimal("0.035")
    assert isinstance(contracts_policy(), ContractsPolicy) and isinstance(savings_policy(), SavingsPolicy)


def test_the_appraisal_policy_is_read_by_the_savings_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.savings.settings import appraisal_policy
    from services.savings.workspace.appraisal import AppraisalPolicy

    monkeypatch.setenv("COMMISSIONING_APPRAISAL_HORIZON_YEARS", "5")
    assert appraisal_policy().horizon_years == 5 and AppraisalPolicy().horizon_years == 3


def test_a_snapshot_interval_set_beyond_the_state_logs_retention_is_refused() -> None:
    from pydantic import ValidationError

    from shared.settings import Settings

    with pytest.raises(ValidationError, match="COMMISSIONING_SNAPSHOT_INTERVAL_S"):
        Settings(snapshot_interval_s=700)
    assert Settings(state_log_keep_s=10).snapshot_every_s == 5, "left at its default: half the retention"
    assert Settings(snapshot_interval_s=30).snapshot_every_s == 30
    assert Settings(snapshot_interval_s=0).snapshot_every_s == 0
