"""The README's commands are the ones CI runs and the CLI offers."""

from __future__ import annotations

import re

from services.cli import build_parser
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> list[str]:
    section = README.split(f"## {heading}", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no command block under '{heading}'"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _block_after("Test it")
    assert len(test_command) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command[0] in [line.strip() for line in ci.splitlines()]


def test_run_it_installs_then_runs_up() -> None:
    run = _block_after("Run it")
    assert run[-2:] == ["pip install -e .", "commissioning up"]


def test_documented_commands_exist() -> None:
    parser = build_parser()
    for argv in (["up"], ["serve"], ["serve", "needs", "savings"]):
        assert parser.parse_args(argv).command == argv[0]


def test_every_setting_is_documented() -> None:
    from shared.settings import Settings

    for name, field in Settings.model_fields.items():
        env = field.validation_alias or f"COMMISSIONING_{name.upper()}"
        assert f"`{env}`" in README, f"{env} is not in the README's configuration table"


def test_every_savings_policy_setting_is_documented() -> None:
    from shared.policy import SavingsPolicy

    doc = (ROOT / "docs" / "savings.md").read_text(encoding="utf-8")
    for name in SavingsPolicy.model_fields:
        assert f"`COMMISSIONING_SAVINGS_{name.upper()}`" in doc


def test_every_needs_policy_setting_is_documented() -> None:
    from services.needs.model import NeedsPolicy

    doc = (ROOT / "docs" / "contract-additions.md").read_text(encoding="utf-8")
    for name in NeedsPolicy.model_fields:
        assert f"`COMMISSIONING_NEEDS_{name.upper()}`" in doc


def test_every_contracts_policy_setting_is_documented() -> None:
    from services.contracts.model import ContractsPolicy

    doc = (ROOT / "docs" / "contract-additions.md").read_text(encoding="utf-8")
    for name in ContractsPolicy.model_fields:
        assert f"`COMMISSIONING_CONTRACTS_{name.upper()}`" in doc


def test_every_procurement_policy_setting_is_documented() -> None:
    from services.procurement.model import ProcurementPolicy

    doc = (ROOT / "docs" / "contract-additions.md").read_text(encoding="utf-8")
    for name in ProcurementPolicy.model_fields:
        if name not in ("grant_below", "quotation_below", "sub_central_threshold", "central_threshold", "light_touch_threshold"):
            assert f"`COMMISSIONING_PROCUREMENT_{name.upper()}`" in doc, name
    assert "COMMISSIONING_PROCUREMENT_*" in doc
