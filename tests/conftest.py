"""Fixtures: a real Redis for the whole session, a fresh key prefix and partner registry per test.

Redis comes from `REDIS_URL` when set, else a testcontainers Redis when a Docker engine
answers (podman's Docker-compatible socket as `DOCKER_HOST`, as `.ci/run` sets it up), else a
`redis-server` subprocess on a free port in a temp dir. The product's image is built once a
session, for the tests that need it (`image`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.partners import PartnerRegistry
from shared.redis_server import RedisServer
from tests.containers import REQUIRED, Image, build_image, engine_missing, podman, skip_or_fail
from tests.support import ROOT, write_partners


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    if _docker_answers():
        try:
            from testcontainers.community.redis import RedisContainer
        except ImportError:  # testcontainers before its modules moved to `community`
            from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7.2") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(container.port)
            yield f"redis://{host}:{port}/0"
        return
    if REQUIRED:  # CI sets the engine up: falling back would hide that testcontainers broke
        pytest.fail("COMMISSIONING_CONTAINER_TESTS=required but no Docker engine answers at DOCKER_HOST")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    """The image, built once a session with the Dockerfile header's command under a tag of the
    session's own (the layers stay cached for the next session; only the tag is removed)."""
    if reason := engine_missing():
        skip_or_fail(reason)
    built = build_image(f"localhost/commissioning-test:{uuid.uuid4().hex[:10]}")
    # the figures the README gives (Operations), for whoever runs the suite
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "image.txt").write_text(
        f"build {built.build_seconds:.1f}s, size {built.size_bytes / 1e6:.0f} MB ({built.tag})\n"
    )
    yield built
    podman("untag", built.tag, built.tag, check=False)  # this tag only, not others on the image


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(r: redis.Redis) -> Iterator[str]:
    """A key prefix of the test's own, so tests never see each other's streams."""
    p = f"t-{uuid.uuid4().hex[:12]}"
    yield p
    keys = list(r.scan_iter(match=f"{p}:*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def partners_path(tmp_path: Path) -> Path:
    return write_partners(tmp_path / "partners.toml")


@pytest.fixture
def registry(partners_path: Path) -> PartnerRegistry:
    return PartnerRegistry.load(partners_path)
