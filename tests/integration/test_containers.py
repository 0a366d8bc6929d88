"""The image and deploy/compose.yaml as an operator runs them, with podman (and podman-compose
1.0): Redis and each service in its own container, the reference partnership sent over HTTP,
a service killed mid-stream, Redis recreated on its volume, non-root read-only containers,
healthchecks, SIGTERM, and bad configuration. Skipped, saying why, where no engine answers."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.money import gbp
from shared.tscip import reference_payloads
from tests.containers import (
    REFERENCE_SAVING, Image, get_json, host_ports, logs, podman, post_reference_events, ready,
    skip_or_fail, write_secret,
)
from tests.integration.test_config_errors import BAD, INVALID_REGISTRY
from tests.support import ROOT, wait_for, write_tscip_partners

pytestmark = [pytest.mark.integration, pytest.mark.containers]

COMPOSE = ROOT / "deploy" / "compose.yaml"
SERVICES = ("needs", "procurement", "contracts", "savings")
#: the compose file's stop_grace_period, within which SIGTERM must have drained
GRACE_S = "20"

# Quick reclaiming for the test: a killed consumer's entries are taken over after 1 s, not 30
OVERRIDE = "services:\n" + "".join(
    f"  {s}:\n    environment:\n"
    "      COMMISSIONING_CLAIM_IDLE_MS: \"1000\"\n      COMMISSIONING_BLOCK_MS: \"100\"\n"
    for s in SERVICES
)


@dataclass
class Stack:
    project: str
    override: Path
    env: dict[str, str]
    ports: dict[str, int]

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"  # podman-compose 1.0's naming

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def compose(self, *args: str) -> None:
        argv = ["podman-compose", "-p", self.project, "-f", str(COMPOSE), "-f", str(self.override), *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def wait_ready(self, timeout: float = 90) -> None:
        names = [self.container(s) for s in SERVICES]
        wait_for(lambda: all(ready(self.url(s)) for s in SERVICES), timeout, 0.5,
                 f"every service ready:\n{logs(*names)}")


@pytest.fixture(scope="module")
def stack(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not shutil.which("podman-compose"):
        skip_or_fail("podman-compose is not installed (apt-get install podman-compose; .ci/run does)")
    tmp = tmp_path_factory.mktemp("compose")
    partners = write_tscip_partners(tmp / "partners.toml")
    partners.chmod(0o644)  # read by uid 10001 through the bind mount compose makes of the secret
    ports = dict(zip(SERVICES, host_ports(len(SERVICES)), strict=True))
    env = {**os.environ, "COMMISSIONING_IMAGE": image.tag, "PARTNERS_FILE": str(partners),
           **{f"{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    s = Stack(f"ctest{uuid.uuid4().hex[:8]}", write_secret(tmp / "override.yaml", OVERRIDE), env, ports)
    try:
        s.compose("up", "-d", "--no-build")
        s.wait_ready()
        yield s
    finally:
        subprocess.run(["podman-compose", "-p", s.project, "-f", str(COMPOSE), "-f", str(s.override),
                        "down", "-v", "-t", "5"], env=env, capture_output=True, timeout=300)
        # podman-compose 1.0 leaves the project's network and, at times, its volume
        podman("network", "rm", "-f", f"{s.project}_default", check=False)
        podman("volume", "rm", "-f", f"{s.project}_redis-data", check=False)


def _figures(s: Stack) -> dict | None:
    return get_json(f"{s.url('savings')}/savings")


def _saving(s: Stack) -> str | None:
    figures = _figures(s)
    return figures["portfolio"]["annual_saving"] if figures else None


def test_compose_serves_the_reference_partnership_through_a_killed_service_and_a_recreated_redis(
    stack: Stack,
) -> None:
    # the needs and investments first (the investments' dates show on the public totals), then
    # the savings container killed, then the three awards
    half = next(i for i, (_, etype, _) in enumerate(reference_payloads("fifteen")) if etype == "tender.awarded")
    post_reference_events(stack.url("needs"), 0, half)
    # the public totals (compose sets COMMISSIONING_PUBLIC_TOTALS): `as_of` once it has applied any
    wait_for(lambda: (_figures(stack) or {}).get("as_of") is not None, 60, 0.2, "savings consuming")
    podman("kill", "--signal", "KILL", stack.container("savings"))  # mid-stream: half still to come
    post_reference_events(stack.url("needs"), half)  # any service's gateway takes events
    podman("start", stack.container("savings"))
    wait_for(lambda: _saving(stack) == REFERENCE_SAVING, 90, 0.5,
             f"£317,648 after the kill:\n{logs(stack.container('savings'))}")
    before = _figures(stack)
    assert before is not None
    # exact: every investment counted once (250,000 + 200,000 + 153,000), the report's ROI
    assert before["portfolio"]["investment"] == "603000.00"
    assert before["portfolio"]["roi"] == "0.58"

    # Redis removed and created again from the compose file: only its volume carries the data
    redis = stack.container("redis")
    keys = podman("exec", redis, "redis-cli", "dbsize").stdout.strip()
    podman("stop", "-t", "10", redis)
    podman("rm", redis)
    stack.compose("up", "-d", "--no-build")  # the others run already: only Redis is created
    assert podman("exec", redis, "redis-cli", "dbsize").stdout.strip() == keys
    stack.wait_ready()
    podman("restart", "-t", GRACE_S, stack.container("savings"))  # its figures now come from Redis alone
    stack.wait_ready()
    after = _figures(stack)
    assert after is not None
    assert after == before, "the public totals (as_of, portfolio) are the same"


def test_the_joint_committee_report_is_written_as_a_pdf_inside_the_image(stack: Stack) -> None:
    # the stack serves the reference partnership (the compose test above sent it): the PDF,
    # written in the read-only savings container, carries the annual saving GET /savings shows
    from pypdf import PdfReader

    saving = wait_for(lambda: _saving(stack), 60, 0.5, "the savings service answers")
    done = subprocess.run(["podman", "exec", stack.container("savings"), "commissioning", "report", "--format", "pdf", "-"],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(done.stdout)).pages)
    assert gbp(saving) in text and "Staffordshire County Council" in text, (saving, text[:500])


def test_service_containers_are_non_root_read_only_and_healthy(stack: Stack) -> None:
    for service in SERVICES:
        name = stack.container(service)
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        assert podman("inspect", name, "--format", "{{.HostConfig.ReadonlyRootfs}}").stdout.strip() == "true"
        write = podman("exec", name, "touch", "/opt/commissioning/written", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        # the compose healthcheck (`commissioning health`), run as the engine runs it
        assert podman("healthcheck", "run", name, check=False).returncode == 0, logs(name)
    assert podman("healthcheck", "run", stack.container("redis"), check=False).returncode == 0


def test_sigterm_drains_within_the_grace_period(stack: Stack) -> None:
    name = stack.container("contracts")
    post_reference_events(stack.url("contracts"), 0, 10)  # work arriving as the stop comes
    podman("stop", "-t", GRACE_S, name, timeout=60)
    # 0, not 137: the process finished by itself before the engine's SIGKILL
    assert podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip() == "0", logs(name)
    assert '"stopped"' in podman("logs", name).stderr + podman("logs", name).stdout
    podman("start", name)
    wait_for(lambda: ready(stack.url("contracts")), 60, 0.5, "contracts back")


def test_bad_configuration_exits_non_zero_with_one_line(image: Image, tmp_path: Path) -> None:
    invalid = write_secret(tmp_path / "invalid.toml", INVALID_REGISTRY)
    valid = write_tscip_partners(tmp_path / "valid.toml")
    valid.chmod(0o644)
    names = {}
    for case, (env, _) in BAD.items():
        name = f"cbad-{uuid.uuid4().hex[:8]}"
        secret = invalid if "invalid" in case else valid
        env = {"REDIS_URL": "redis://127.0.0.1:1/0", "COMMISSIONING_PARTNERS": "/run/secrets/partners", **env}
        podman("run", "-d", "--name", name, "--read-only", "-v", f"{secret}:/run/secrets/partners:ro",
               *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], image.tag, "serve", "savings")
        names[case] = name
    try:
        for case, name in names.items():
            code = podman("wait", name, timeout=60).stdout.strip()
            out = podman("logs", name)
            lines = (out.stdout + out.stderr).splitlines()
            assert code != "0", case
            assert len(lines) == 1 and lines[0].startswith("commissioning: "), (case, lines)
            assert BAD[case][1] in lines[0], (case, lines)
            assert "never-printed" not in lines[0]
    finally:
        podman("rm", "-f", *names.values(), check=False)
