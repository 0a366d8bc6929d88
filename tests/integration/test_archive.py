"""The event log kept, Redis bounded (issue 16): canonical streams archived to checksummed zstd
segments before they are trimmed; a rebuild from archive + tail gives the same figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from shared.archive import Archive, CorruptSegment
from shared.tscip import reference_payloads
from tests.support import OWNERS, READ, ROOT, send_as, serve, service_env, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration


def test_canonical_streams_are_archived_then_trimmed_and_rebuilt_from_archive_and_tail(
    r: redis.Redis, prefix: str, redis_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "archive"
    env = service_env(
        redis_url,
        prefix,
        write_tscip_partners(tmp_path / "p.toml"),
        trim_interval_s="0.1",
        archive_dir=str(folder),
    )
    proc = serve(tmp_path, env, *OWNERS, "savings")
    try:
        proc.wait_ready()
        payloads = list(reference_payloads("fifteen"))
        for n, (pid, etype, data) in enumerate(payloads[:-3]):
            send_as(r, prefix, pid, etype, data, f"ref-{n}")
        needs = f"{prefix}:need.identified"
        wait_for(
            lambda: r.xlen(needs) == 0 and r.exists(f"{prefix}:archive:{needs}"), 30, what="archived, trimmed"
        )
        proc.terminate()
        tail_env = {k: v for k, v in env.items() if k != "COMMISSIONING_ARCHIVE_DIR"}
        proc = serve(
            tmp_path, tail_env, *OWNERS, "savings"
        )  # the tail: the last events stay in Redis (nothing archives)
        for n, (pid, etype, data) in list(enumerate(payloads))[-3:]:
            send_as(r, prefix, pid, etype, data, f"ref-{n}")
        proc.wait_ready()
        wait_for(
            lambda: httpx.get(f"{proc.url}/savings", headers=READ).json()["portfolio"]["annual_saving"]
            == "317648.00",
            30,
            what="the reference figures",
        )
        figures = httpx.get(f"{proc.url}/savings", headers=READ).json()

        archive = Archive(folder)  # its files alone
        segments = archive.segments(needs)
        assert segments and all(p.with_name(p.name + ".sha256").exists() for p in segments)
        assert segments[0].read_bytes()[:4] == b"\x28\xb5\x2f\xfd", "a zstd frame"
        kinds = (
            "need.identified",
            "tender.awarded",
            "monitoring.return.submitted",
            "investment.recorded",
            "contract.decommissioned",
        )
        archived = sum(len(list(archive.read(f"{prefix}:{t}"))) for t in kinds)
        tail = sum(r.xlen(f"{prefix}:{t}") for t in kinds)
        assert archived > 0 and tail > 0 and archived + tail == len(payloads)

        rebuilt = subprocess.run(
            [sys.executable, "-m", "services.cli", "savings", "rebuild"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "figures unchanged" in rebuilt.stdout and f"rebuilt from {archived} archived" in rebuilt.stdout
        wait_for(
            lambda: httpx.get(f"{proc.url}/savings", headers=READ).json() == figures, 20, what="same figures"
        )

        # a damaged segment is refused, never read as if whole
        data = bytearray(segments[0].read_bytes())
        data[len(data) // 2] ^= 0xFF
        segments[0].write_bytes(bytes(data))
        with pytest.raises(CorruptSegment):
            list(archive.read(needs))
    finally:
        proc.stop()
