"""The container engine for the tests: podman (../shared/CONTAINERS.md), the image built once a
session with the command in deploy/Dockerfile's header, and the reference partnership sent over
HTTP as partner systems send it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.partners import sign
from shared.tscip import reference_payloads
from tests.support import ROOT, event, tscip_secret

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
REFERENCE_SAVING = "317648.00"

#: set by .ci/run: a container test that cannot run there is a failure, not a skip
REQUIRED = os.environ.get("COMMISSIONING_CONTAINER_TESTS") == "required"


def engine_missing() -> str | None:
    """Why the container tests cannot run here, or None when podman answers."""
    if not shutil.which("podman"):
        return "podman is not installed (../shared/tools/podman-here sets it up; .ci/run runs it)"
    done = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"podman does not answer: {done.stderr.strip()[-300:]}"
    return None


def skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"container tests are required here (COMMISSIONING_CONTAINER_TESTS): {reason}")
    pytest.skip(reason)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {shlex.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def build_command(tag: str) -> list[str]:
    """The podman build command in the Dockerfile's header (continuation lines joined), with
    this session's tag: what the tests build is what an operator is told to run."""
    header = []
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    text = " ".join(header).replace("\\ ", "")
    found = re.search(r"(podman build .*? -f deploy/Dockerfile -t commissioning \.)", text)
    assert found, "deploy/Dockerfile's header gives the podman build command"
    argv = shlex.split(found.group(1))
    argv[argv.index("-t") + 1] = tag
    return argv


@dataclass
class Image:
    tag: str
    build_seconds: float
    size_bytes: int


def build_image(tag: str) -> Image:
    started = time.monotonic()
    done = subprocess.run(build_command(tag), cwd=ROOT, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"the image did not build:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    size = int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())
    return Image(tag, seconds, size)


def post_reference_events(base_url: str, start: int = 0, stop: int | None = None) -> int:
    """POST the reference partnership's events [start:stop] to /events, each signed by its
    partner (secrets as tests.support.write_tscip_partners writes them). Returns how many."""
    payloads = reference_payloads("fifteen")[start:stop]
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for n, (pid, etype, data) in enumerate(payloads, start):
            body = json.dumps(event(data, type=etype, partner=pid, id=f"container-ref-{n}")).encode()
            response = client.post("/events", content=body, headers={
                "Content-Type": "application/cloudevents+json",
                "X-Signature": f"sha256={sign(tscip_secret(pid), body)}",
            })
            assert response.status_code == 202, response.text
    return len(payloads)


def get_json(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def ready(base_url: str) -> bool:
    return bool(get_json(f"{base_url}/health/ready"))


def logs(*names: str) -> str:
    return "\n".join(f"--- {n}\n{podman('logs', '--tail', '30', n, check=False).stderr}" for n in names)


def host_ports(count: int) -> Iterator[int]:
    from shared.redis_server import free_port

    return (free_port() for _ in range(count))


def write_secret(path: Path, text: str) -> Path:
    """A file a container user (uid 10001) can read through a bind mount."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path
