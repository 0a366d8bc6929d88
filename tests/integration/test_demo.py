"""`commissioning demo` runs the reference partnership end to end and prints its figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("own_redis", [False, True], ids=["REDIS_URL", "private-redis"])
def test_demo_prints_the_reports_figures(redis_url: str, own_redis: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    if not own_redis:
        env["REDIS_URL"] = redis_url
    done = subprocess.run([sys.executable, "-m", "services.cli", "demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "annual saving                    £317,648" in out
    assert "annual saving                    £265,498" in out
    assert "baseline staff cost a year       £426,937" in out
    assert "shared contracts' cost a year    £109,289" in out
    assert "ROI                                   58%" in out
    assert "ROI                                   55%" in out
    assert out.count("year 6") == 2, "year by year over the horizon"
    assert "events into the projection" in out, "progress while events flow"
    if own_redis:
        assert "Private Redis for the demo at redis://127.0.0.1:" in out
