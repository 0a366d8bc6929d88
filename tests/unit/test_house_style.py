"""House style that ruff's formatter does not enforce by itself: no line of the product's code
(services/, shared/) longer than the house line length (pyproject.toml, `[tool.ruff]`). The
formatter wraps code but leaves long strings and comments as they are."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_product_code_keeps_to_the_house_line_length() -> None:
    limit = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    files = sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")])
    assert len(files) > 50, "the product's code was found"
    longer = [
        f"{path.relative_to(ROOT)}:{n}: {len(line)} characters"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > limit
    ]
    assert not longer, "\n".join(longer)
