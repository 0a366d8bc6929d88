"""The benchmark's baseline: the product's two hops as a minimal hand-written redis-py pipeline.
It imports nothing from the project, so it measures what Python and Redis can do, not the
project against itself.

    python bench/baseline.py verify --redis URL --prefix P --secrets FILE   # hop 1
    python bench/baseline.py totals --redis URL --prefix P                  # hop 2

Hop 1 reads `P:inbound` in a consumer group, 500 entries at a time: finds the partner named in
the `source`, checks the HMAC-SHA256 signature, parses the JSON, checks the type, republishes
the bytes on `P:<type>` and acks, in one pipeline per batch. Hop 2 reads those streams in a
consumer group, folds each contract's and partner's annual saving in `Decimal`, publishes a
summary per batch on `P:summary` (the totals and every partner's figure) and acks. No
idempotency records, no atomic effects, no validation models: what a careful programmer would
write by hand to get the same totals.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from collections import defaultdict
from decimal import Decimal

import redis

GROUP = "baseline"
BATCH = 500
TYPES = ("need.identified", "tender.awarded")
SOURCE = re.compile(rb'"source"\s*:\s*"/partners/([a-z0-9-]{1,64})"')
#: the shared cost of a contract without a stated management cost, per partner (the product's
#: policy has a table; a flat rate does the same work)
COST_PER_PARTNER = Decimal("1500.00")


def _group(r: redis.Redis, stream: str) -> None:
    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def verify(r: redis.Redis, prefix: str, secrets: dict[str, bytes]) -> None:
    inbound = f"{prefix}:inbound"
    _group(r, inbound)
    r.set(f"{prefix}:ready:verify", 1)
    while True:
        got = r.xreadgroup(GROUP, "verify", {inbound: ">"}, count=BATCH, block=1000)
        if not got:
            continue
        pipe = r.pipeline(transaction=False)
        ids = []
        for entry_id, fields in got[0][1]:
            ids.append(entry_id)
            raw, signature = fields.get(b"event", b""), fields.get(b"signature", b"")
            found = SOURCE.search(raw[:4096])
            secret = secrets.get(found.group(1).decode()) if found else None
            ok = secret is not None and hmac.compare_digest(
                hmac.new(secret, raw, hashlib.sha256).hexdigest().encode(), signature
            )
            etype = json.loads(raw).get("type") if ok else None
            if etype in TYPES:
                pipe.xadd(f"{prefix}:{etype}", {"event": raw})
            else:
                pipe.xadd(
                    f"{prefix}:rejected", {"event": raw[:256], "reason": "signature or type"}, maxlen=1000
                )
        pipe.xack(inbound, GROUP, *ids)
        pipe.execute()


def totals(r: redis.Redis, prefix: str) -> None:
    streams = {f"{prefix}:{t}": ">" for t in TYPES}
    for s in streams:
        _group(r, s)
    r.set(f"{prefix}:ready:totals", 1)
    needs: dict[tuple[str, str], Decimal] = {}
    partner_saving: defaultdict[str, Decimal] = defaultdict(Decimal)
    baseline = shared = Decimal(0)
    events = 0
    while True:
        got = r.xreadgroup(GROUP, "totals", streams, count=BATCH, block=1000)
        if not got:
            continue
        pipe = r.pipeline(transaction=False)
        for stream, entries in got:  # needs before awards: the needs stream is read first
            for _, fields in entries:
                data = json.loads(fields[b"event"])["data"]
                events += 1
                if "need_id" in data:
                    needs[(data["partner_id"], data["need_id"])] = Decimal(
                        data["current_annual_resource_cost"]
                    )
                    partner_saving[data["partner_id"]] += 0
                    continue
                shares = [
                    (p["partner_id"], needs.get((p["partner_id"], p["need_id"]), Decimal(0)))
                    for p in data["partners"]
                ]
                cost = (
                    Decimal(data["annual_management_cost"])
                    if data.get("annual_management_cost")
                    else COST_PER_PARTNER * len(shares)
                )
                base = sum((c for _, c in shares), Decimal(0))
                baseline, shared = baseline + base, shared + cost
                for pid, c in shares:  # each partner's share of the saving, by its baseline
                    partner_saving[pid] += (base - cost) * c / base if base else Decimal(0)
            pipe.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))
        summary = {
            "events_applied": events,
            "portfolio": {
                "baseline_annual_cost": f"{baseline:.2f}",
                "shared_annual_cost": f"{shared:.2f}",
                "annual_saving": f"{baseline - shared:.2f}",
            },
            "partners": [
                {"partner_id": p, "annual_saving": f"{v:.2f}"} for p, v in sorted(partner_saving.items())
            ],
        }
        pipe.xadd(f"{prefix}:summary", {"event": json.dumps(summary, separators=(",", ":"))}, maxlen=1000)
        pipe.execute()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hop", choices=("verify", "totals"))
    ap.add_argument("--redis", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--secrets", help="JSON file: partner id -> secret (hop 1)")
    args = ap.parse_args()
    r = redis.Redis.from_url(args.redis)
    try:
        if args.hop == "verify":
            with open(args.secrets, encoding="utf-8") as f:
                verify(r, args.prefix, {k: v.encode() for k, v in json.load(f).items()})
        else:
            totals(r, args.prefix)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
