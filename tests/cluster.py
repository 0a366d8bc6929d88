"""A real Redis Cluster on loopback for the tests and the benchmark: six `redis-server`
processes (three primaries, three replicas) made with `redis-cli --cluster create`."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from shared.redis_server import RedisServer


def http_ports(n: int) -> int:
    """The first of `n` consecutive free ports, below the kernel's range of ephemeral ports: a
    process serving n partnerships (or a cluster's nodes) binds them while it (and its
    neighbours) open hundreds of Redis connections, whose local ports come from that range and
    could take one first."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    while True:
        base = rng.randrange(10_000, low - n)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + n):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


@dataclass(frozen=True)
class Node:
    id: str
    port: int
    primary: bool
    primary_id: str  # a replica's primary ('' for a primary)
    slots: int  # how many slots it serves


class LoopbackCluster:
    def __init__(self, data_dir: Path, appendfsync: str = "everysec", node_timeout_ms: int = 1000,
                 nodes: int = 6, replicas: int = 1, server: Path | None = None) -> None:
        """`server`: a `redis-server` or `valkey-server` binary (default: the first on the PATH);
        its `-cli` beside it, else on the PATH, makes the cluster."""
        self.data_dir = data_dir
        # each node's port and its cluster bus port (not port + 10000, which may be taken or too
        # high), below the ephemeral range: a port picked from it was once taken by another
        # process's connection before the node could bind it (CI: "bind: Address already in use")
        base = http_ports(2 * nodes)
        self.servers = [
            RedisServer(data_dir / f"node{i}", base + 2 * i, appendfsync=appendfsync, extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(base + 2 * i + 1),
                "--repl-diskless-sync-delay", "0",  # a replica in sync at once, not 5s later
                "--cluster-node-timeout", str(node_timeout_ms),
            ])
            for i in range(nodes)
        ]
        self.replicas = replicas
        if server is not None:
            for s in self.servers:
                s.binary = server
        binary = self.servers[0].binary
        beside = binary.with_name(binary.name.replace("-server", "-cli"))
        self.cli = str(beside) if beside.exists() else (shutil.which("redis-cli") or shutil.which("valkey-cli") or "")

    @property
    def url(self) -> str:
        """A live node's URL: the one a client finds the cluster from."""
        return self.alive()[0].url

    def start(self, timeout: float = 30.0) -> LoopbackCluster:
        cli = self.cli
        if not cli:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        try:
            for s in self.servers:
                s.start()
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout,
            )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url)

    def node_client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def alive(self) -> list[RedisServer]:
        return [s for s in self.servers if s.process is not None and s.process.poll() is None]

    def nodes(self) -> list[Node]:
        """The cluster as a live node sees it (failed nodes left out)."""
        with self.node_client(self.alive()[0].port) as c:
            table = c.execute_command("CLUSTER NODES")  # redis-py parses it: address -> fields
        out = []
        for address, n in table.items():
            flags = n["flags"].split(",")
            if "fail" in flags or "noaddr" in flags:
                continue
            slots = sum(int(r[-1]) - int(r[0]) + 1 for r in n["slots"])
            port = int(address.split("@")[0].rsplit(":", 1)[1])
            out.append(Node(n["node_id"], port, "master" in flags, "" if n["master_id"] == "-" else n["master_id"],
                            slots))
        return out

    def owner_of(self, key: str) -> Node:
        """The primary serving `key`'s slot."""
        with self.node_client(self.alive()[0].port) as c:
            slot = int(c.execute_command("CLUSTER KEYSLOT", key))
            for lo, hi, primary, *_ in c.execute_command("CLUSTER SLOTS"):
                if lo <= slot <= hi:
                    port = int(primary[1])
                    return next(n for n in self.nodes() if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def replica_of(self, primary: Node) -> Node:
        return next(n for n in self.nodes() if n.primary_id == primary.id)

    def wait_ok(self, timeout: float = 30.0, replicas: bool = True) -> None:
        """Until every live node says `cluster_state:ok`, and every slot is served, and (with
        `replicas`) each primary has its replicas connected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = []
                for s in self.alive():
                    with self.node_client(s.port) as c:
                        info = c.execute_command("CLUSTER INFO")  # parsed by redis-py: a dict
                        states.append(info["cluster_state"] == "ok" and int(info["cluster_slots_assigned"]) == 16384)
                        role = c.info("replication")
                        # a replica that has not synced yet cannot be promoted
                        states.append(role["role"] == "master" or role.get("master_link_status") == "up")
                nodes = self.nodes()
                linked = all(sum(1 for r in nodes if r.primary_id == p.id) >= min(self.replicas, 1)
                             for p in nodes if p.primary and p.slots)
                if all(states) and (linked or not replicas):
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ok after {timeout}s; see the logs under {self.data_dir}")
            time.sleep(0.1)

    def wait_promoted(self, replica: Node, timeout: float = 30.0) -> float:
        """Until `replica` serves slots as a primary and the cluster is ok; how long it took."""
        start = time.monotonic()
        while True:
            try:
                if any(n.id == replica.id and n.primary and n.slots for n in self.nodes()):
                    break
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{replica.port} not promoted after {timeout}s")
            time.sleep(0.05)
        self.wait_ok(timeout, replicas=False)
        return time.monotonic() - start

    def reshard(self, source: Node, target: Node, slots: int, timeout: float = 120.0) -> None:
        """Move `slots` slots from `source` to `target` with `redis-cli --cluster reshard`
        (keys move with MIGRATE while clients are redirected with ASK)."""
        subprocess.run(
            [self.cli, "--cluster", "reshard", f"127.0.0.1:{source.port}",
             "--cluster-from", source.id, "--cluster-to", target.id,
             "--cluster-slots", str(slots), "--cluster-yes", "--cluster-pipeline", "100"],
            check=True, capture_output=True, timeout=timeout,
        )

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
