"""Settings from the environment: one table, documented in the README."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_", extra="ignore", frozen=True)

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    prefix: str = Field(default="commissioning", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    partners: Path | None = None
    batch_size: int = Field(default=500, ge=1, le=10_000)
    block_ms: int = Field(default=1000, ge=10, le=60_000)
    claim_idle_ms: int = Field(default=30_000, ge=50)
    max_deliveries: int = Field(default=5, ge=1, le=100)
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    #: a bid's submitted_on must be within this many days of the gateway's date (-1: no check)
    bid_date_tolerance_days: int = Field(default=2, ge=-1)
    #: run the gateway's consumer of `P:inbound` in this process (False: a process that only
    #: runs its services, beside `serve gateway` processes that do the verifying)
    gateway: bool = True
    #: a partner's request whose prerequisite its owner has not read yet (a return before its
    #: contract's award) waits this long from its arrival before it is refused
    decide_wait_s: float = Field(default=30.0, ge=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    ready_max_lag: int = Field(default=10_000, ge=0)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    data_dir: Path = Path(".commissioning")
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
