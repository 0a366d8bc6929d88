"""Bad configuration makes `commissioning serve` exit non-zero with one clear line (never a
traceback a restart policy would loop on), and prints no secret. The same cases run in the
image in test_containers.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, service_env, write_tscip_partners

pytestmark = pytest.mark.integration

#: case -> (environment over a valid one, what the line says); "invalid" cases get an invalid registry
BAD = {
    "missing partners file": ({"COMMISSIONING_PARTNERS": "/etc/nowhere.toml"}, "does not exist"),
    "invalid partners file": ({}, "a [[partner]] entry is invalid: name: Field required"),
    "bad variable": ({"COMMISSIONING_BATCH_SIZE": "lots"},
                     "COMMISSIONING_BATCH_SIZE: Input should be a valid integer"),
    "unreachable Redis": ({"REDIS_URL": "redis://127.0.0.1:1/0"},
                          "cannot reach Redis at redis://127.0.0.1:1/0"),
    "not a Redis URL": ({"REDIS_URL": "http://user:pw@example.org/"}, "REDIS_URL is not a Redis URL"),
}
INVALID_REGISTRY = '[[partner]]\nid = "x"\nsecret = "never-printed"\n'


def test_bad_configuration_exits_non_zero_with_one_line(redis_url: str, tmp_path: Path) -> None:
    valid = write_tscip_partners(tmp_path / "valid.toml")
    invalid = tmp_path / "invalid.toml"
    invalid.write_text(INVALID_REGISTRY)
    procs = {}
    for case, (over, _) in BAD.items():
        env = {**service_env(redis_url, "t-config", invalid if "invalid" in case else valid), **over}
        procs[case] = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "savings"], env=env,
                                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for case, p in procs.items():
        out, err = p.communicate(timeout=60)
        lines = (out + err).splitlines()
        assert p.returncode == 2, (case, lines)
        assert len(lines) == 1 and lines[0].startswith("commissioning: "), (case, lines)
        assert BAD[case][1] in lines[0], (case, lines)
        assert "never-printed" not in lines[0] and "pw" not in lines[0]
