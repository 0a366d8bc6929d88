"""The Kubernetes base (deploy/k8s/base) run with `podman kube play`: each Deployment a pod,
with the product's image, Redis beside them, the reference partnership sent over HTTP, and the
pods' security context as the manifests say. Skipped, saying why, where no engine answers.

The base is rendered by `kubectl kustomize` where kubectl is installed, else by hand (its
resources with its one common label: all the base's kustomization does). Then, for podman:
- names get a prefix of the test's own (pods, volumes and networks are global to the engine);
- Services are left out: podman has none, a pod is reached by its name (`<deployment>-pod-0`);
- the partner registry is a hostPath: podman 4.3 mounts a Secret's data still base64-encoded;
- each service's port is published on the host (`hostPort`), and Redis is added (a PVC).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers import (
    REFERENCE_SAVING, Image, get_json, host_ports, logs, podman, post_reference_events, ready,
)
from tests.support import ROOT, wait_for, write_tscip_partners

pytestmark = [pytest.mark.integration, pytest.mark.containers]

BASE = ROOT / "deploy" / "k8s" / "base"
SERVICES = ("needs", "procurement", "contracts", "savings")


def render_base() -> list[dict[str, Any]]:
    if shutil.which("kubectl"):
        done = subprocess.run(["kubectl", "kustomize", str(BASE)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return [d for d in yaml.safe_load_all(done.stdout) if d]
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    labels = {k: v for entry in kustomization.get("labels", []) for k, v in entry["pairs"].items()}
    docs = [d for f in kustomization["resources"] for d in yaml.safe_load_all((BASE / f).read_text()) if d]
    for d in docs:
        d["metadata"].setdefault("labels", {}).update(labels)
    return docs


def redis_manifests(prefix: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": f"{prefix}-redis"}
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{prefix}-redis-data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": f"{prefix}-redis", "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{
                 "name": "redis", "image": "docker.io/library/redis:7.2",
                 "args": ["redis-server", "--appendonly", "yes", "--dir", "/data", "--protected-mode", "no"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data",
                              "persistentVolumeClaim": {"claimName": f"{prefix}-redis-data"}}]}}}},
    ]


def for_podman(docs: list[dict[str, Any]], prefix: str, image: str, partners_dir: Path,
               ports: dict[str, int]) -> list[dict[str, Any]]:
    out = redis_manifests(prefix)
    for doc in copy.deepcopy(docs):
        if doc["kind"] == "Service":
            continue
        name = doc["metadata"]["name"]
        doc["metadata"]["name"] = f"{prefix}-{name}"
        if doc["kind"] == "ConfigMap":
            doc["data"]["REDIS_URL"] = f"redis://{prefix}-redis-pod-0:6379/0"
            doc["data"]["COMMISSIONING_CLAIM_IDLE_MS"] = "1000"
        if doc["kind"] != "Deployment":
            out.append(doc)
            continue
        spec = doc["spec"]["template"]["spec"]
        for c in spec["containers"]:
            c["image"] = image
            for source in c.get("envFrom", []):
                source["configMapRef"]["name"] = f"{prefix}-{source['configMapRef']['name']}"
            c["ports"][0]["hostPort"] = ports[name]
            # podman turns httpGet probes into curl in the container, which the image has not;
            # the test asks the health endpoints over HTTP instead, as a kubelet does
            c.pop("readinessProbe", None)
            c.pop("livenessProbe", None)
        for volume in spec["volumes"]:
            if "secret" in volume:
                volume.pop("secret")
                volume["hostPath"] = {"path": str(partners_dir), "type": "Directory"}
        out.append(doc)
    return out


@pytest.fixture
def pods(image: Image, tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    partners_dir = tmp_path / "partners"
    partners_dir.mkdir()
    partners_dir.chmod(0o755)
    write_tscip_partners(partners_dir / "partners.toml").chmod(0o644)
    ports = dict(zip(SERVICES, host_ports(len(SERVICES)), strict=True))
    manifest = tmp_path / "play.yaml"
    manifest.write_text(yaml.safe_dump_all(for_podman(render_base(), prefix, image.tag, partners_dir, ports)))
    podman("network", "create", prefix)
    try:
        podman("kube", "play", "--network", prefix, str(manifest), timeout=300)
        yield prefix, ports
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=300)
        podman("volume", "rm", "-f", f"{prefix}-redis-data", check=False)
        podman("network", "rm", "-f", prefix, check=False)


def test_kube_play_runs_the_base_with_the_reference_partnership(pods: tuple[str, dict[str, int]]) -> None:
    prefix, ports = pods
    containers = {s: f"{prefix}-{s}-pod-0-{s}" for s in SERVICES}
    urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    wait_for(lambda: all(ready(u) for u in urls.values()), 90, 0.5,
             f"every pod ready:\n{logs(*containers.values())}")
    post_reference_events(urls["needs"])
    wait_for(lambda: (get_json(f"{urls['savings']}/savings") or {}).get("portfolio", {}).get("annual_saving")
             == REFERENCE_SAVING, 60, 0.5, f"£317,648:\n{logs(containers['savings'])}")
    for service, name in containers.items():
        # the manifests' securityContext: runAsUser 10001, readOnlyRootFilesystem
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001", service
        assert podman("inspect", name, "--format", "{{.HostConfig.ReadonlyRootfs}}").stdout.strip() == "true"
        assert get_json(f"{urls[service]}/health/live") == {"status": "live"}
    # SIGTERM within the pod's terminationGracePeriodSeconds (30): the process ends by itself
    podman("pod", "stop", "-t", "30", f"{prefix}-savings-pod-0", timeout=90)
    assert podman("inspect", containers["savings"], "--format", "{{.State.ExitCode}}").stdout.strip() == "0"
