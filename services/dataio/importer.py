"""`commissioning import FILE`: check every row, then sign and send the needs in batches."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from services.dataio import arrangements
from services.dataio.sender import Journal, Outgoing, Sender, SendError, events_url, report
from shared.partners import PartnerRegistry, PartnerRegistryError
from shared.progress import Progress


@dataclass(frozen=True)
class Options:
    path: Path
    url: str
    partner: str | None  # sign as this partner (its secret from COMMISSIONING_PARTNER_SECRET)
    registry: Path | None  # or sign each partner's rows with its key from this registry
    journal: Path | None
    check_only: bool
    batch_size: int
    as_json: bool


class UsageError(ValueError):
    pass


def _secrets(opts: Options) -> dict[str, str]:
    if opts.partner:
        secret = os.environ.get("COMMISSIONING_PARTNER_SECRET", "")
        if not secret:
            raise UsageError(
                "set COMMISSIONING_PARTNER_SECRET to the key you share with the partnership "
                f"(it signs {opts.partner}'s events; it is never given on the command line)"
            )
        return {opts.partner: secret}
    if opts.registry:
        try:
            return {p.id: p.secret.get_secret_value() for p in PartnerRegistry.load(opts.registry)}
        except PartnerRegistryError as e:
            raise UsageError(str(e)) from e
    raise UsageError(
        "say who signs: --partner ID (with COMMISSIONING_PARTNER_SECRET), or --registry "
        "PATH (COMMISSIONING_PARTNERS) to sign each partner's rows with its own key"
    )


def run(opts: Options) -> int:
    try:
        if not 1 <= opts.batch_size <= 1000:
            raise UsageError("--batch-size must be 1 to 1,000 (the contract's most events in one batch)")
        secrets = _secrets(opts)
        rows, errors = arrangements.read(opts.path, set(secrets))
    except (UsageError, arrangements.ImportFileError) as e:
        print(f"commissioning import: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"commissioning import: {opts.path} does not exist", file=sys.stderr)
        return 2
    events: list[arrangements.NeedEvent] = []
    if not errors:
        events, errors = arrangements.needs(rows)
    if errors:
        if opts.as_json:
            print(json.dumps({"errors": [e.as_dict() for e in errors]}, indent=1))
        else:
            for error in errors:
                print(f"{opts.path.name}: {error}", file=sys.stderr)
        print(f"{len(errors)} problem(s) in {opts.path.name}; nothing was sent", file=sys.stderr)
        return 1
    partners = len({e.partner_id for e in events})
    print(f"{opts.path.name}: {len(rows)} arrangements of {partners} partner(s) -> {len(events)} needs")
    if opts.check_only:
        return 0
    journal = Journal(opts.journal or opts.path.with_name(opts.path.name + ".sent"), events_url(opts.url))
    sender = Sender(opts.url, secrets, journal)
    progress = Progress(len(events), "sending")
    try:
        outcome = sender.send(
            [Outgoing(e.partner_id, e.event_id, e.body) for e in events], progress.update, opts.batch_size
        )
    except SendError as e:
        print(f"\ncommissioning import: {e}", file=sys.stderr)
        return 1
    finally:
        sender.close()
    progress.finish()
    print(report(outcome))
    return 1 if outcome.rejected else 0
