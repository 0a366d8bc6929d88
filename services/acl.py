"""`commissioning acl`: a Redis ACL file for the bus, and the passwords to hand out.

- `partner-<id>`: may only XADD to `P:inbound` and read its own `P:rejected:<id>`;
- `service-<name>`: the gateway's keys (every process runs it) and its own service's: the
  streams it consumes and publishes, its groups' records, its state;
- `service-gateway`: the gateway's keys alone, for `serve gateway` processes;
- every `service-*` user may read `P:viewers` (viewer token digests, services.readauth) and
  the sign-in sessions `P:viewer-session:*`, and write those sessions and the sign-ins under
  way `P:oidc:*` (services/oidc.py: any process may serve a sign-in);
- `service-savings` may also read every accepted stream but the sealed bids (it serves the
  workspace, services/savings/workspace);
- `dashboard`: read-only on `P:savings.updated`;
- `operator`: everything, for `commissioning dead-letter` and `savings rebuild`;
- `default`: off.
Passwords are random; the ACL file holds only their SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from services.contracts.state import TYPES as CONTRACTS_TYPES
from services.needs.state import TYPES as NEEDS_TYPES
from services.procurement.state import TYPES as PROCUREMENT_TYPES
from services.savings.projection import TYPES as SAVINGS_TYPES
from services.savings.workspace.source import TYPES as WORKSPACE_TYPES
from shared.events import PARTNER_TYPES, SEALED_TYPES
from shared.partners import PartnerRegistry
from shared.streams import Streams

#: what each service writes besides its groups and state (event types); what it reads is
#: its subscriptions (each service's TYPES)
WRITES: dict[str, tuple[str, ...]] = {
    "needs": ("opportunity.identified", "opportunity.updated"),
    "procurement": (
        "tender.published",
        "tender.closed",
        "tender.award.intended",
        "tender.evaluation.published",
        "tender.cancelled",
        "tender.awarded",
    ),
    "contracts": (
        "monitoring.return.accepted",
        "performance.concern.raised",
        "performance.concern.escalated",
        "performance.concern.termination_considered",
        "performance.concern.resolved",
        "payment.calculated",
        "monitoring.return.overdue",
        "monitoring.return.received",
        "contract.decommissioned",
    ),
    "savings": ("savings.updated",),
}
READS: dict[str, tuple[str, ...]] = {
    "needs": NEEDS_TYPES,
    "procurement": PROCUREMENT_TYPES,
    "contracts": CONTRACTS_TYPES,
    "savings": SAVINGS_TYPES,
}

# (CLIENT SETINFO: Redis 7.2+; redis-py ignores its refusal)
CONNECT = "+ping +hello +auth +client|setname +client|id +info"
SERVICE_COMMANDS = (
    "+xreadgroup +xack +xclaim +xautoclaim +xpending +xinfo +xgroup|create +xgroup|delconsumer +xadd +xrange "
    "+xrevrange +xread +xlen +hset +hget +hmget +hdel +hgetall +hlen +hscan +sadd +sismember +get +incr "
    "+exists +del "
    "+zadd +zscore +zrangebyscore +zrem +zremrangebyscore +zremrangebyrank +xtrim +set +getdel "
    "+rename +scan +type +evalsha +eval +script|load +script|exists +multi +exec +discard " + CONNECT
)


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _keys(patterns: Iterable[str], mode: str = "") -> str:
    return " ".join(f"{mode}~{p}" for p in patterns)


def rules(registry: PartnerRegistry, streams: Streams, passwords: dict[str, str]) -> list[str]:
    """ACL lines for every user, with passwords from `passwords` (user -> password)."""
    s = streams

    def user(name: str, body: str) -> str:
        return f"user {name} on #{password_hash(passwords[name])} resetkeys resetchannels -@all {body}"

    lines = ["user default off resetkeys resetchannels -@all"]
    for p in registry:
        lines.append(
            user(
                f"partner-{p.id}",
                f"%W~{s.inbound} %R~{s.rejected(p.id)} +xadd +xrange +xrevrange +xread +xlen {CONNECT}",
            )
        )
    partner_types = [t for t in PARTNER_TYPES if t not in SEALED_TYPES]
    # the gateway forwards to the owners' request streams; an owner publishes its decisions on
    # P:<type> and P:rejected:<partner>, which every process may therefore write
    gateway = [
        s.inbound,
        s.key("group", "gateway", "*"),
        s.rejected("*"),
        s.dead_letter,
        s.requests("*"),
        *(s.of_type(t) for t in partner_types),
    ]
    sealed_write = [s.accepted(t) for t in SEALED_TYPES]
    # every serving process checks viewer tokens and sessions (services.readauth) and may serve a
    # sign-in with the identity provider (services/oidc.py)
    viewers = f"%R~{s.key('viewers')} ~{s.key('viewer-session:*')} ~{s.key('oidc:*')}"
    for name, writes in WRITES.items():
        own = [s.accepted(t) for t in READS[name]] + [s.of_type(t) for t in writes]
        own += [s.key("group", name, "*"), s.state(name, "*")]
        # the savings process serves the workspace, which reads every accepted stream but bids
        read = _keys([s.accepted(t) for t in WORKSPACE_TYPES], "%R") if name == "savings" else ""
        lines.append(
            user(
                f"service-{name}",
                f"{_keys(gateway + own)} {_keys(sealed_write, '%W')} {read} {viewers} {SERVICE_COMMANDS}",
            )
        )
    lines.append(
        user("service-gateway", f"{_keys(gateway)} {_keys(sealed_write, '%W')} {viewers} {SERVICE_COMMANDS}")
    )
    lines.append(user("dashboard", f"%R~{s.savings_updated} +xread +xrange +xrevrange +xlen {CONNECT}"))
    lines.append(f"user operator on #{password_hash(passwords['operator'])} ~* &* +@all")
    return lines


def users(registry: PartnerRegistry) -> list[str]:
    return (
        [f"partner-{p.id}" for p in registry]
        + [f"service-{n}" for n in (*WRITES, "gateway")]
        + ["dashboard", "operator"]
    )


def generate(
    registry: PartnerRegistry, streams: Streams, passwords: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """(ACL file text, user -> password); passwords not given are made up fresh."""
    given = passwords or {}
    made = {u: given.get(u) or secrets.token_urlsafe(24) for u in users(registry)}
    return "\n".join(rules(registry, streams, made)) + "\n", made
