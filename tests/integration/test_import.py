"""`commissioning import` as a partner runs it: a real CLI process sending to a real
`commissioning serve` process over HTTP, on a real Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.tscip import CATEGORIES
from tests.integration.test_needs_service import published, saving
from tests.support import ROOT, Proc, serve, service_env, tscip_secret, wait_for, write_tscip_partners

pytestmark = pytest.mark.integration

REFERENCE = ROOT / "examples" / "import" / "000-tscip.csv"


def run_import(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "import", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


@pytest.fixture
def needs_service(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[tuple[Proc, Path]]:
    partners = write_tscip_partners(tmp_path / "partners.toml")
    proc = serve(tmp_path, service_env(redis_url, prefix, partners), "needs").wait_ready()
    yield proc, partners
    assert proc.terminate() == 0, proc.log()


def test_the_reference_partnership_imports_from_one_file_and_gives_the_reports_proposals(
    needs_service: tuple[Proc, Path], r: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    proc, partners = needs_service
    data = tmp_path / "000-tscip.csv"
    data.write_bytes(REFERENCE.read_bytes())
    done = run_import(str(data), "--url", proc.url, "--registry", str(partners))
    assert done.returncode == 0, done.stderr
    assert "100 arrangements of 15 partner(s) -> 35 needs" in done.stdout
    assert "35 new, 0 already on the server, 0 sent by an earlier run, 0 rejected" in done.stdout
    assert "sending: 35/35 (100%" in done.stderr, "progress is shown"

    want = {
        "advocacy-2012-03": "81441.00",
        "debt-benefits-consumer-advice-2012-12": "96500.00",
        "infrastructure-volunteering-2013-03": "139707.00",
    }
    wait_for(
        lambda: {k: saving(v) for k, v in published(r, prefix).items()} == want,
        30,
        0.1,
        "the three proposals",
    )
    assert sum(int(v.split(".")[0]) for v in want.values()) == 317_648

    again = run_import(str(data), "--url", proc.url, "--registry", str(partners))
    assert (
        again.returncode == 0 and "0 new, 0 already on the server, 35 sent by an earlier run" in again.stdout
    )
    (tmp_path / "000-tscip.csv.sent").unlink()  # the record lost: the server still counts each once
    third = run_import(str(data), "--url", proc.url, "--registry", str(partners))
    assert (
        third.returncode == 0 and "0 new, 35 already on the server, 0 sent by an earlier run" in third.stdout
    )
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 35, 30, what="the needs service's decisions")


def test_a_file_with_bad_rows_sends_nothing_and_names_each_row_and_column(
    needs_service: tuple[Proc, Path], r: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    proc, _ = needs_service
    lines = REFERENCE.read_text().splitlines()
    lines[5] = lines[5].replace(",yes", ",perhaps")
    lines[35] = lines[35].replace("2013-03-31", "2013-13-31")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    done = run_import(
        str(bad),
        "--url",
        proc.url,
        "--partner",
        "staffordshire-cc",
        COMMISSIONING_PARTNER_SECRET=tscip_secret("staffordshire-cc"),
    )
    assert done.returncode == 1
    assert "bad.csv: row 6, column I (open_to_sharing): 'perhaps' is not yes or no" in done.stderr
    assert "bad.csv: row 36, column H (end_date): '2013-13-31' is not a date" in done.stderr
    assert (
        "row 101, column A (partner_id): 'staffordshire-fire' is not a partner this run signs for "
        "(staffordshire-cc)" in done.stderr
    ), "a partner signs only its own rows"
    assert "nothing was sent" in done.stderr
    as_json = run_import(str(bad), "--check", "--json", "--registry", str(needs_service[1]))
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["errors"] == [
        {"row": 6, "column": "open_to_sharing", "message": "'perhaps' is not yes or no"},
        {
            "row": 36,
            "column": "end_date",
            "message": "'2013-13-31' is not a date: use 2013-03-31 or 31/03/2013",
        },
    ]
    no_key = run_import(
        str(bad), "--url", proc.url, "--partner", "staffordshire-cc", COMMISSIONING_PARTNER_SECRET=""
    )
    assert no_key.returncode == 2 and "set COMMISSIONING_PARTNER_SECRET" in no_key.stderr
    checked = run_import(str(REFERENCE), "--check", "--registry", str(needs_service[1]))
    assert checked.returncode == 0 and "100 arrangements of 15 partner(s) -> 35 needs" in checked.stdout
    assert "sending" not in checked.stderr and not (REFERENCE.parent / "000-tscip.csv.sent").exists()
    assert r.xlen(f"{prefix}:need.identified") == 0 and not r.exists(f"{prefix}:rejected:staffordshire-cc")


def test_a_partner_sends_its_own_arrangements_with_its_own_key(
    needs_service: tuple[Proc, Path], r: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    proc, _ = needs_service
    mine = [
        line
        for line in REFERENCE.read_text().splitlines()
        if line.startswith(("partner_id,", "tamworth-bc,"))
    ]
    path = tmp_path / "tamworth.csv"
    path.write_text("\n".join(mine) + "\n")
    done = run_import(
        str(path),
        "--url",
        proc.url,
        "--partner",
        "tamworth-bc",
        COMMISSIONING_PARTNER_SECRET=tscip_secret("tamworth-bc"),
    )
    assert done.returncode == 0, done.stderr
    assert "2 arrangements of 1 partner(s) -> 2 needs" in done.stdout and "2 new" in done.stdout
    sources = {json.loads(f[b"event"])["source"] for _, f in r.xrange(f"{prefix}:need.identified")}
    assert sources == {"/partners/tamworth-bc"}
    wrong = run_import(
        str(path),
        "--url",
        proc.url,
        "--partner",
        "tamworth-bc",
        "--journal",
        str(tmp_path / "j"),
        COMMISSIONING_PARTNER_SECRET="not-the-key",
    )
    assert wrong.returncode == 1 and "401" in wrong.stderr and "bad_signature" in wrong.stderr


class CuttingProxy:
    """A real TCP relay to the server that passes `passes` requests, forwards the next one but
    cuts the connection before its answer, and then stops listening: a network failure midway."""

    def __init__(self, upstream_port: int, passes: int) -> None:
        self.upstream_port = upstream_port
        self.passes = passes
        self.seen = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.seen > self.passes:  # down: every new connection is refused at once
                self._close(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if requests:
                    self.seen += chunk.count(b"POST /events")
                elif self.seen > self.passes:  # the answer to the request that is cut
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        self._close(src)
        self._close(dst)

    @staticmethod
    def _close(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv, unlike close() alone
        except OSError:
            pass
        s.close()


def test_a_network_failure_midway_resumes_without_sending_anything_twice(
    needs_service: tuple[Proc, Path], r: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    proc, partners = needs_service
    assert proc.http_port is not None
    proxy = CuttingProxy(proc.http_port, passes=4)
    data = tmp_path / "000-tscip.csv"
    data.write_bytes(REFERENCE.read_bytes())
    args = (str(data), "--registry", str(partners), "--batch-size", "2")
    url = f"http://127.0.0.1:{proxy.port}"
    cut = run_import(*args, "--url", url)
    assert cut.returncode == 1 and "run the same command again to send the rest" in cut.stderr, cut.stderr
    journal = (tmp_path / "000-tscip.csv.sent").read_text().splitlines()
    assert len(journal) == 8, "the events of the four batches answered are recorded"

    proxy.passes = 10**9  # the network is back
    resumed = run_import(*args, "--url", url)
    proxy.listener.close()
    assert resumed.returncode == 0, resumed.stderr
    # the fifth batch reached the server but its answer was lost: its two events come back as
    # already there; the four answered batches are not sent at all
    assert "25 new, 2 already on the server, 8 sent by an earlier run, 0 rejected" in resumed.stdout
    # the journal is per server: sent to another address, everything is offered again, and the
    # server, which has it all, counts nothing twice
    other = run_import(*args, "--url", proc.url)
    assert "0 new, 35 already on the server, 0 sent by an earlier run" in other.stdout
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 35, 30, what="the needs service's decisions")
    ids = [json.loads(f[b"event"])["id"] for _, f in r.xrange(f"{prefix}:need.identified")]
    assert len(set(ids)) == 35
    assert {
        json.loads(f[b"event"])["data"]["service_category"] for _, f in r.xrange(f"{prefix}:need.identified")
    } == set(CATEGORIES)
