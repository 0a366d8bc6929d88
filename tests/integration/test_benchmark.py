"""`python bench/benchmark.py` (README, Performance) runs as the README gives it and prints its
figures: throughput against the baseline, the update sizes, the latency with each hop, and the
rebuild with the starts of a savings process on the state it leaves."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration


def test_the_benchmark_prints_throughput_latency_and_its_hops() -> None:
    done = subprocess.run(
        [sys.executable, "bench/benchmark.py", "--contracts", "20", "--rounds", "1",
         "--sides", "baseline", "serve", "--latency-seconds", "2", "--latency-rate", "200",
         "--latency-runs", "2", "--rebuild", "2200"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"round 1/1 serve: [\d,]+ events/s, CPU [\d.]+ ms/event, Redis [\d,]+ bytes/event; "
                     r"savings.updated after one contract changed [\d,]+ bytes", out), out
    assert re.search(r"ratio serve/baseline at 20 contracts: [\d.]+", out), out
    for run in (1, 2):  # interleaved: the baseline, then serve, in each run
        assert re.search(rf"  run {run}/2 baseline: p50 \d+ ms, p99 \d+ ms; CPU[^\n]*\n"
                         rf"  run {run}/2 serve: p50 \d+ ms", out), out
    for name in ("baseline", "serve"):
        assert re.search(rf"  {name}, median of 2 runs: p50 \d+ ms, p99 \d+ ms \(p99 \d+-\d+ ms\)", out), out
    serve = re.search(r"  run 1/2 serve: p50 (\d+) ms, p99 \d+ ms; CPU [\d.]+ ms an event, \d+% of a core\n"
                      r"    hops: gateway p50 (\d+) ms, p99 \d+ ms; owner p50 (\d+) ms, p99 \d+ ms; "
                      r"savings p50 (\d+) ms, p99 \d+ ms", out)
    assert serve, out
    total, *hops = (int(x) for x in serve.groups())
    # each hop is part of the way from the inbound entry to the summary (Redis's clock, in ms)
    assert all(0 <= hop <= total + 2 for hop in hops), out
    assert re.search(r"rebuild of the projection from 2,200 events: [\d.]+ s\n"
                     r"  start \(first start\): [\d.]+ s, resident \d+ MiB after it \(peak \d+ MiB\)\n"
                     r"  start \(from the snapshot\): [\d.]+ s, resident \d+ MiB after it \(peak \d+ MiB\)\n"
                     r"  start \(every event\): [\d.]+ s", out), out
    assert re.search(r"throughput \d+ baseline \d+ ratio [\d.]+\s*$", out), out


def test_the_dispatch_benchmark_prints_what_a_batch_costs() -> None:
    done = subprocess.run(
        [sys.executable, "bench/dispatch.py", "--entries", "200", "--rounds", "1"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for side in ("redis-py", "faststream", "faststream+metrics"):
        assert re.search(rf"round 1/1 {re.escape(side)}: \d+ us CPU an entry", done.stdout), done.stdout
    assert re.search(r"dispatch -?\d+ us a batch, metrics -?\d+ us more", done.stdout), done.stdout
