"""Settings from the environment: one table, documented in the README."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.policy import SavingsPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_", extra="ignore", frozen=True)

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    prefix: str = Field(default="commissioning", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: the partnership this process serves: every key is `<prefix>:{<partnership>}:…`, so one
    #: partnership's keys share one Redis Cluster hash slot (unset: `<prefix>:…` as before,
    #: for a single primary only)
    partnership: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: several partnerships served by one process, comma-separated (instead of `partnership`):
    #: each gets its own services, consumer groups and HTTP port (`http_port` + its position)
    partnerships: str = Field(default="", pattern=r"^[A-Za-z0-9_.,-]*$")
    #: > 0: `partnerships` is a pool shared with the other processes given it, by leases of
    #: this many seconds (services.leases); each process serves its fair share. 0: serve them all
    lease_s: float = Field(default=0, ge=0)
    #: `single`: one primary (REDIS_URL names it); `cluster`: a Redis or Valkey Cluster
    #: (REDIS_URL names any node of it; a partnership is then required)
    redis_mode: str = Field(default="single", pattern="^(single|cluster)$")
    partners: Path | None = None
    batch_size: int = Field(default=500, ge=1, le=10_000)
    block_ms: int = Field(default=1000, ge=10, le=60_000)
    #: after a batch smaller than `batch_size`, wait this long before reading again (shared.bus)
    linger_ms: float = Field(default=5, ge=0, le=1_000)
    claim_idle_ms: int = Field(default=30_000, ge=50)
    max_deliveries: int = Field(default=5, ge=1, le=100)
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: token buckets (events a second, burst), per gateway process; a rate of 0 switches one off
    rate_per_partner: float = Field(default=1_000, ge=0)
    burst_per_partner: int = Field(default=10_000, ge=1)
    rate_per_address: float = Field(default=1_000, ge=0)
    burst_per_address: int = Field(default=10_000, ge=1)
    #: entries kept in each partner's P:rejected:<partner> and in P:rejected:unknown
    rejected_maxlen: int = Field(default=1_000, ge=10)
    rejected_unknown_maxlen: int = Field(default=10_000, ge=10)
    #: bytes kept of an entry from an unknown or unauthenticated sender
    rejected_keep_bytes: int = Field(default=256, ge=0, le=4096)
    #: a bid's submitted_on must be within this many days of the gateway's date (-1: no check)
    bid_date_tolerance_days: int = Field(default=2, ge=-1)
    #: run the gateway's consumer of `P:inbound` in this process (False: a process that only
    #: runs its services, beside `serve gateway` processes that do the verifying)
    gateway: bool = True
    #: a partner's request whose prerequisite its owner has not read yet (a return before its
    #: contract's award) waits this long from its arrival before it is refused
    decide_wait_s: float = Field(default=30.0, ge=0)
    #: retention (shared.bus.retention): how often, how long ids are remembered, stream caps
    trim_interval_s: float = Field(default=1.0, gt=0)
    idempotency_window_s: int = Field(default=7 * 86_400, ge=60)
    idempotency_max_ids: int = Field(default=200_000, ge=1_000)
    derived_maxlen: int = Field(default=10_000, ge=100)
    #: how long a service's state log keeps the keys it stored (replicas follow it every 2 s)
    state_log_keep_s: float = Field(default=600, ge=10)
    #: how often the savings projection saves a snapshot (0: never); under the log's retention,
    #: so a restart reads the snapshot and the log after it
    snapshot_interval_s: float = Field(default=60, ge=0)
    dead_letter_maxlen: int = Field(default=100_000, ge=100)
    #: where canonical streams are archived before they are trimmed (unset: never trimmed)
    archive_dir: Path | None = None
    #: anyone may read the partnership's totals (GET /savings: as_of and portfolio only)
    public_totals: bool = False
    #: sign-in with the council's identity provider (services/oidc.py); unset: viewer tokens only
    oidc_issuer: str | None = Field(default=None, pattern=r"^https?://\S+$")
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    #: the e-mail addresses and `@domain`s that may read (comma-separated); nobody else
    oidc_allowed: str = ""
    oidc_session_hours: float = Field(default=8, gt=0, le=24 * 30)
    #: the callback URL registered at the provider (unset: this server's /signin/oidc/callback)
    oidc_redirect_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    ready_max_lag: int = Field(default=10_000, ge=0)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    data_dir: Path = Path(".commissioning")
    #: `up`'s private Redis: its memory limit (policy noeviction), and the share of a Redis's
    #: limit at which /health/ready warns (and at twice the distance to full, fails)
    redis_maxmemory: str = Field(default="1gb", pattern=r"^[0-9]+(b|kb|mb|gb)?$")
    memory_warn_ratio: float = Field(default=0.8, gt=0, lt=1)
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    @property
    def key_prefix(self) -> str:
        """What every key starts with (`P:` in the contract)."""
        return partnership_prefix(self.prefix, self.partnership)

    @property
    def served(self) -> list[str | None]:
        """The partnerships this process serves (`[None]`: the keys under `prefix` alone)."""
        many = [p for p in self.partnerships.split(",") if p]
        return list(dict.fromkeys(many)) if many else [self.partnership]

    def for_partnership(self, partnership: str | None, position: int) -> Settings:
        """This process's settings for one of the partnerships it serves."""
        port = self.http_port + position if self.http_port else 0
        return self.model_copy(update={"partnership": partnership, "partnerships": "", "http_port": port})

    @property
    def snapshot_every_s(self) -> float:
        """The snapshot interval in use: the setting, or half the state log's retention when that
        is shorter and the interval was left at its default."""
        return min(self.snapshot_interval_s, self.state_log_keep_s / 2)

    @property
    def cluster(self) -> bool:
        return self.redis_mode == "cluster"

    @model_validator(mode="after")
    def _snapshots_within_the_log(self) -> Settings:
        if (
            "snapshot_interval_s" in self.model_fields_set
            and self.snapshot_interval_s >= self.state_log_keep_s
        ):
            raise ValueError(
                f"COMMISSIONING_SNAPSHOT_INTERVAL_S ({self.snapshot_interval_s:g}) must be under "
                f"COMMISSIONING_STATE_LOG_KEEP_S ({self.state_log_keep_s:g}): a restart reads the "
                "snapshot and the state log after it, which must still be there"
            )
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret and self.oidc_allowed):
            raise ValueError(
                "COMMISSIONING_OIDC_ISSUER needs COMMISSIONING_OIDC_CLIENT_ID, "
                "COMMISSIONING_OIDC_CLIENT_SECRET and COMMISSIONING_OIDC_ALLOWED "
                "(the e-mail addresses or @domains that may read)"
            )
        return self


class SavingsSettings(BaseSettings, SavingsPolicy):
    """The savings policy (shared.policy), read from the environment (`COMMISSIONING_SAVINGS_*`)."""

    model_config = SettingsConfigDict(env_prefix="COMMISSIONING_SAVINGS_", extra="ignore", frozen=True)


def savings_policy() -> SavingsPolicy:
    return SavingsSettings()


def partnership_prefix(prefix: str, partnership: str | None) -> str:
    """`commissioning:{tscip}` for partnership `tscip`: the braces are Redis Cluster's hash
    tag, so all of one partnership's keys (and every script over them) live on one slot."""
    return f"{prefix}:{{{partnership}}}" if partnership else prefix
