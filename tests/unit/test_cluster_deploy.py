"""The cluster deployment examples (deploy/cluster/compose.yaml, deploy/k8s/overlays/cluster)
say what the settings accept: a cluster client, and partnerships by the names `serve` reads.
They are examples, not run (docs/cluster.md); tests/integration/test_cluster.py runs the
cluster itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_compose_cluster_has_six_nodes_and_its_services_a_cluster_client_and_their_partnerships() -> None:
    doc = yaml.safe_load((DEPLOY / "cluster" / "compose.yaml").read_text())
    services = doc["services"]
    nodes = [n for n in services if n.startswith("redis-")]
    assert len(nodes) == 6
    assert all("--cluster-enabled yes" in " ".join(services[n]["command"]) for n in nodes)
    create = " ".join(services["cluster-init"]["command"])
    assert all(f"{n}:6379" in create for n in nodes) and "--cluster-replicas 1" in create
    served: list[str] = []
    for name, s in services.items():
        if not name.startswith("serve"):
            continue
        env = {k: str(v) for k, v in s["environment"].items()}
        settings = Settings.model_validate({k.removeprefix("COMMISSIONING_").lower(): v for k, v in env.items()
                                            if k.startswith("COMMISSIONING_")} | {"REDIS_URL": env["REDIS_URL"]})
        assert settings.cluster and settings.redis_url
        served += [p for p in settings.served if p]
        ports = s["ports"][0].split(":")[1]
        assert ports == f"8080-{8080 + len(settings.served) - 1}", "one HTTP port per partnership"
    assert len(served) == len(set(served)) > 1, "each partnership served by one process"


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed: kustomize rendering not exercised")
def test_the_kubernetes_cluster_overlay_renders_with_a_cluster_client_for_one_partnership() -> None:
    done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / "cluster")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    settings = Settings.model_validate({k.removeprefix("COMMISSIONING_").lower(): v
                                        for k, v in config["data"].items() if k.startswith("COMMISSIONING_")})
    assert settings.cluster and settings.served == ["north"]
    for d in (d for d in docs if d["kind"] == "Deployment"):
        refs = [e["configMapRef"]["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
                if "configMapRef" in e]
        assert refs == [config["metadata"]["name"]]
