"""The README's commands are the ones CI runs and the CLI offers."""

from __future__ import annotations

import importlib
import re

import pytest

from services.cli import build_parser
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str) -> list[str]:
    section = README.split(f"## {heading}", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no command block under '{heading}'"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def _ci_lines() -> list[str]:
    """.ci/run's lines, with what only quietens pip taken out."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    return [" ".join(line.replace("python -m pip", "pip").replace(" --quiet", "").split())
            for line in ci.splitlines()]


def test_ci_runs_the_readme_test_commands() -> None:
    test_commands = _block_after("Test it")
    assert test_commands == ["pip install -e '.[test]'", "python -m pytest"]
    ci = _ci_lines()
    positions = [ci.index(command) for command in test_commands]
    assert positions == sorted(positions), "CI installs the test tools, then runs the tests"
    # the engine: shared/ is beside the clone, and CI runs from the clone's root
    assert "podman_here=../shared/tools/podman-here" in ci
    assert 'bash "$podman_here" --socket)' in "\n".join(ci)
    assert 'cd "$(dirname "$0")/.."' in ci


def test_readme_builds_the_image_as_the_dockerfile_header_says() -> None:
    from tests.containers import build_command

    block = " ".join(_block_after("Operations")).replace("\\ ", "")
    assert block.split() == build_command("commissioning")


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


@pytest.mark.parametrize(
    ("policy", "env_prefix", "doc"),
    [
        ("shared.policy:SavingsPolicy", "COMMISSIONING_SAVINGS_", "savings.md"),
        ("services.needs.model:NeedsPolicy", "COMMISSIONING_NEEDS_", "contract-additions.md"),
        ("services.contracts.model:ContractsPolicy", "COMMISSIONING_CONTRACTS_", "contract-additions.md"),
        ("services.procurement.model:ProcurementPolicy", "COMMISSIONING_PROCUREMENT_", "contract-additions.md"),
        ("services.savings.workspace.appraisal:AppraisalPolicy", "COMMISSIONING_APPRAISAL_", "workspace.md"),
    ],
)
def test_every_policy_setting_is_documented(policy: str, env_prefix: str, doc: str) -> None:
    module, name = policy.split(":")
    fields = getattr(importlib.import_module(module), name).model_fields
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    for field in fields:
        assert f"`{env_prefix}{field.upper()}`" in text, f"{env_prefix}{field.upper()} is not in docs/{doc}"
