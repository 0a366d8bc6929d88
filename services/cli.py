"""The `commissioning` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from shared import collector, eventloop
from shared.logging import configure_logging
from shared.money import gbp
from shared.partners import PartnerRegistry, PartnerRegistryError
from shared.settings import Settings


def _fail(message: str) -> int:
    print(f"commissioning: {message}", file=sys.stderr)
    return 2


def _settings() -> Settings:
    return Settings()


def _setting_errors(e: ValidationError) -> str:
    """Each bad variable by its environment name, on one line (the values are left out: a
    variable may hold a password)."""
    fields = Settings.model_fields
    names = []
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        alias = fields[field].validation_alias if field in fields else None
        env = alias if isinstance(alias, str) else f"COMMISSIONING_{field.upper()}"
        names.append(f"{env}: {err['msg']}")
    return "; ".join(names)


def cmd_serve(args: argparse.Namespace) -> int:
    from services.runtime import SERVICES, ConfigurationError, serve

    settings = _settings()
    names = args.services or list(SERVICES)
    configure_logging("+".join(names), settings.log_level, settings.log_format)
    if settings.partners is None:
        return _fail("COMMISSIONING_PARTNERS is not set: give the path of the partner registry (TOML)")
    try:
        registry = _registries(settings.partners, settings.served)
        eventloop.run(serve(names, settings, registry))
    except (ConfigurationError, PartnerRegistryError) as e:
        return _fail(str(e))
    return 0


def _registries(path: Path, served: list[str | None]) -> Callable[[str | None], PartnerRegistry]:
    """The partner registry of each partnership served: `path` itself, or, when it is a
    folder, `<path>/<partnership>.toml` (a partner of several partnerships signs each with
    that partnership's secret). All are loaded now, so a missing one fails at start."""
    if not path.is_dir():
        one = PartnerRegistry.load(path)
        return lambda _: one
    loaded = {p: PartnerRegistry.load(path / f"{p}.toml") for p in served}
    return loaded.__getitem__


def cmd_up(args: argparse.Namespace) -> int:
    from services.runtime import SERVICES, ConfigurationError, serve
    from redis.exceptions import RedisError

    from shared.adapters.redis import local_viewer_token
    from shared.redis_server import NoRedisServerError, RedisServer
    from shared.streams import Streams
    from shared.tscip import write_registry

    settings = _settings()
    configure_logging("up", settings.log_level, settings.log_format)
    data_dir = settings.data_dir.resolve()
    server = None
    overrides: dict[str, object] = {}
    if not settings.redis_url:
        try:
            server = RedisServer(
                data_dir / "redis", port=args.redis_port, maxmemory=settings.redis_maxmemory
            ).start()
        except NoRedisServerError as e:
            return _fail(str(e))
        overrides["redis_url"] = server.url
        print(
            f"Redis ({server.binary.name}) at {server.url}; data in {server.data_dir}; "
            f"at most {settings.redis_maxmemory} of memory, never evicting",
            flush=True,
        )
    if settings.partners is None:
        path = data_dir / "partners.toml"
        if not path.exists():
            write_registry(path)
        overrides["partners"] = path
        print(f"Partner registry: {path} (set COMMISSIONING_PARTNERS to use your own)", flush=True)
    settings = settings.model_copy(update=overrides)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        token = local_viewer_token(
            settings.redis_url, Streams(settings.key_prefix), data_dir / "viewer-token"
        )
    except RedisError as e:
        return _fail(f"cannot reach Redis at {settings.redis_url}: {e}")
    print(
        f"Dashboard: http://{settings.http_host}:{settings.http_port}/dashboard; sign in with the "
        f"viewer token {token}\n  (kept in {data_dir / 'viewer-token'}; "
        "`commissioning viewer issue NAME` issues more)\n"
        f"HTTP on http://{settings.http_host}:{settings.http_port} "
        "(POST /events, GET /savings, /savings/stream, /health/ready, /metrics, /docs/asyncapi); "
        "Ctrl-C stops",
        flush=True,
    )
    try:
        registry = PartnerRegistry.load(settings.partners)  # type: ignore[arg-type]
        eventloop.run(serve(list(SERVICES), settings, registry))
    except (ConfigurationError, PartnerRegistryError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
            print(f"Redis stopped; data kept in {server.data_dir}", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import main as demo

    settings = _settings()
    configure_logging("demo", "WARNING", settings.log_format)
    return demo(settings)


def _with_redis(run):  # type: ignore[no-untyped-def]
    """Run `run(redis, streams)` against REDIS_URL."""
    from shared.redis_client import connect
    from shared.streams import Streams

    settings = _settings()
    if not settings.redis_url:
        raise SystemExit(_fail("REDIS_URL is not set: point it at the bus's Redis"))

    async def go():  # type: ignore[no-untyped-def]
        redis = connect(settings.redis_url, cluster=settings.cluster)
        try:
            return await run(redis, Streams(settings.key_prefix))
        finally:
            await redis.aclose()

    return eventloop.run(go())


def _at_least_one(text: str) -> int:
    """A count of processes: a whole number, 1 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: at least 1")
    return n


def cmd_savings_rebuild(args: argparse.Namespace) -> int:
    from services.savings.rebuild import rebuild

    from shared.archive import Archive

    settings = _settings()
    configure_logging("savings-rebuild", "WARNING", settings.log_format)
    folder = settings.archive_dir
    result = _with_redis(
        lambda r, s: rebuild(
            r,
            s,
            archive=Archive(folder) if folder else None,  # read from its files alone
            snapshot_every_s=settings.snapshot_every_s,
            workers=args.workers,
        )
    )
    print(
        f"rebuilt from {result['archived_read']} archived and {result['entries_read']} stream entries "
        f"in {result['seconds']}s: "
        f"{result['events']} events applied, {result['skipped']} unusable entries left out, "
        f"{result['caught_up']} caught up after the swap"
    )
    portfolio = result["portfolio"]
    print(
        f"annual saving {gbp(portfolio['annual_saving'])}, "
        f"projected {gbp(portfolio['projected_saving'])}, ROI {portfolio['roi']}"
    )
    print("figures unchanged" if result["unchanged"] else f"figures changed; before: {result['before']}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from services import apidocs as docs

    if args.write:
        for path in docs.write():
            print(f"wrote {path}")
        return 0
    stale = docs.stale()
    for path in stale:
        print(f"out of date: {path} (run: commissioning docs --write)")
    return 1 if stale else 0


def cmd_dead_letter(args: argparse.Namespace) -> int:
    from services import deadletter
    from shared.adapters.redis import RedisDelivery

    if args.action == "list":
        rows = _with_redis(lambda r, s: deadletter.listing(RedisDelivery(r, s), args.count))
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no dead letters")
        for row in [] if args.json else rows:
            print(
                f"{row['dead_letter_id']}  {row['stream']} ({row['group']}, {row['deliveries']} deliveries)  "
                f"{row['event']}\n    {row['code']}: {row['error']}"
            )
        return 0
    results = _with_redis(lambda r, s: deadletter.retry(RedisDelivery(r, s), args.ids))
    for i, outcome in results.items():
        print(f"{i}: {outcome}")
    if not results:
        print("no dead letters to retry")
    return 0 if all(v == "replayed" for v in results.values()) else 1


def cmd_viewer(args: argparse.Namespace) -> int:
    from shared import viewers
    from shared.adapters.redis import RedisCredentials

    if args.action == "issue":
        token = _with_redis(lambda r, s: viewers.issue(RedisCredentials(r, s), args.name))
        print(f"viewer token for {args.name} (shown once; Redis keeps only its SHA-256):\n{token}")
        print("a browser signs in at /signin with it; a program sends Authorization: Bearer <token>")
        return 0
    if args.action == "revoke":
        n = _with_redis(lambda r, s: viewers.revoke(RedisCredentials(r, s), args.name))
        print(f"revoked {n} token(s) of {args.name}")
        return 0 if n else 1
    for name in _with_redis(lambda r, s: viewers.names(RedisCredentials(r, s))):
        print(name)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The quarterly report to the joint committee, from the streams: the workspace's own figures."""
    from services.savings.settings import appraisal_policy
    from services.savings.workspace.pages import Workspace
    from services.savings.workspace.report import to_csv
    from shared.adapters.redis import RedisEntries
    from shared.settings import savings_policy

    settings = _settings()
    if settings.partners is None:
        return _fail(
            "COMMISSIONING_PARTNERS is not set: give the path of the partner registry (TOML), "
            "for partners' names"
        )
    try:
        registry = PartnerRegistry.load(settings.partners)
    except PartnerRegistryError as e:
        return _fail(str(e))
    fmt = args.format or ("pdf" if str(args.out).endswith(".pdf") else "csv")

    async def run(redis, streams):  # type: ignore[no-untyped-def]
        pages = Workspace(RedisEntries(redis), streams, registry, savings_policy(), appraisal_policy())
        report = await pages.report()
        return report, (to_csv(report).encode() if fmt == "csv" else pages.report_pdf(report))

    from services.savings.workspace.report import PdfUnavailable

    try:
        report, body = _with_redis(run)
    except PdfUnavailable as e:
        return _fail(str(e))
    if str(args.out) == "-":
        sys.stdout.buffer.write(body)
    else:
        Path(args.out).write_bytes(body)
        print(
            f"wrote {args.out}: report to the joint committee, {report.quarter}, "
            f"annual saving {gbp(report.overview.annual_saving)}, {len(report.decisions)} decision(s) needed"
        )
    return 0


def cmd_acl(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.acl import generate
    from shared.streams import Streams

    settings = _settings()
    if settings.partners is None:
        return _fail("COMMISSIONING_PARTNERS is not set: the ACL gives each registered partner its own user")
    try:
        registry = PartnerRegistry.load(settings.partners)
    except PartnerRegistryError as e:
        return _fail(str(e))
    text, passwords = generate(registry, Streams(settings.key_prefix))
    out = Path(args.output)
    out.write_text(text, encoding="utf-8")
    creds = Path(args.passwords)
    creds.write_text("".join(f'{u} = "{p}"\n' for u, p in passwords.items()), encoding="utf-8")
    creds.chmod(0o600)
    print(f"wrote {out} ({len(passwords)} users; load it with: redis-server --aclfile {out})")
    print(
        f"wrote {creds} (the passwords, readable by you only): "
        "give each partner, service and dashboard its own"
    )
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """The container healthcheck: this process's own /health/ready (or /health/live), without
    a shell one-liner that every engine quotes differently."""
    import urllib.error
    import urllib.request

    port = _settings().http_port
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/health/{'live' if args.live else 'ready'}", timeout=args.timeout
        ) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"commissioning: not healthy: {e}", file=sys.stderr)
        return 1


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.dataio.importer import Options, run

    registry = args.registry or (None if args.partner else _settings().partners)
    return run(
        Options(
            Path(args.file),
            args.url,
            args.partner,
            Path(registry) if registry else None,
            Path(args.journal) if args.journal else None,
            args.check,
            args.batch_size,
            args.json,
        )
    )


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.dataio.export import ExportError, export
    from shared.adapters.redis import RedisEntries

    settings = _settings()
    prefix = args.partnership or settings.key_prefix
    names: dict[str, str] = {}
    if settings.partners is not None:  # the registry only lends the partners' names
        try:
            names = {p.id: p.name for p in PartnerRegistry.load(settings.partners)}
        except PartnerRegistryError as e:
            return _fail(str(e))
    try:
        written = _with_redis(
            lambda r, s: export(
                RedisEntries(r),
                prefix,
                Path(args.output),
                args.ocid_prefix,
                args.publisher,
                public=args.public,
                csv=not args.no_csv,
                names=names,
                uri=args.uri,
            )
        )
    except ExportError as e:
        return _fail(str(e))
    for line in written:
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commissioning",
        description="Shared commissioning of public services: the cycle as events on Redis.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run services against REDIS_URL, as a container would")
    p.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="needs, procurement, contracts, savings (default: all); "
        "gateway alone: a process that only verifies inbound events",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("up", help="everything on one machine, with a private Redis when REDIS_URL is unset")
    p.add_argument(
        "--redis-port", type=int, default=None, help="port for the private Redis (default: a free one)"
    )
    p.set_defaults(func=cmd_up)

    savings = sub.add_parser("savings", help="the savings projection").add_subparsers(
        dest="action", required=True
    )
    p = savings.add_parser("rebuild", help="replay the streams into a fresh projection, with progress")
    p.add_argument(
        "--workers",
        type=_at_least_one,
        default=None,
        help="processes computing the contracts' figures "
        "(default: one a core it may use, at most 4; 1: none forked)",
    )
    p.set_defaults(func=cmd_savings_rebuild)

    dead = sub.add_parser(
        "dead-letter", help="entries that failed repeatedly: list them, retry them once fixed"
    )
    dead_sub = dead.add_subparsers(dest="action", required=True)
    p = dead_sub.add_parser("list", help="list dead letters with their errors")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dead_letter)
    p = dead_sub.add_parser("retry", help="replay dead letters onto their streams (all when no id is given)")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.set_defaults(func=cmd_dead_letter)

    viewer = sub.add_parser("viewer", help="credentials to read the savings figures and the dashboard")
    viewer_sub = viewer.add_subparsers(dest="action", required=True)
    p = viewer_sub.add_parser("issue", help="a new token for NAME (printed once)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_viewer)
    p = viewer_sub.add_parser("revoke", help="delete every token of NAME")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_viewer)
    p = viewer_sub.add_parser("list", help="the names holding tokens")
    p.set_defaults(func=cmd_viewer)

    p = sub.add_parser(
        "acl", help="write a Redis ACL file (partners, services, dashboards) and their passwords"
    )
    p.add_argument("--output", default="users.acl", help="the ACL file (default users.acl)")
    p.add_argument(
        "--passwords", default="acl-passwords.toml", help="where to write the passwords (mode 600)"
    )
    p.set_defaults(func=cmd_acl)

    p = sub.add_parser(
        "docs", help="check (or --write) docs/asyncapi.json and docs/schemas/ against the code"
    )
    p.add_argument("--write", action="store_true", help="write the documents instead of checking them")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser(
        "report", help="the quarterly report to the joint committee (CSV or PDF), from the streams"
    )
    p.add_argument("out", help="the file to write (.csv or .pdf), or - for standard output")
    p.add_argument("--format", choices=["csv", "pdf"], help="default: from the file's name, else csv")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "health", help="exit 0 when the process on COMMISSIONING_HTTP_PORT is ready (a container healthcheck)"
    )
    p.add_argument(
        "--live", action="store_true", help="only that it is up (/health/live), not that it is ready"
    )
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("demo", help="the reference partnership end to end, with its figures")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("import", help="send a council's existing arrangements (CSV/Excel template) as needs")
    p.add_argument(
        "file", metavar="FILE", help="a .csv or .xlsx file made from the template (docs/import.md)"
    )
    p.add_argument(
        "--url",
        default=os.environ.get("COMMISSIONING_URL", "http://127.0.0.1:8080"),
        help="the partnership's HTTP endpoint (COMMISSIONING_URL; default http://127.0.0.1:8080)",
    )
    p.add_argument(
        "--partner",
        default=os.environ.get("COMMISSIONING_PARTNER_ID"),
        help="sign as this partner (COMMISSIONING_PARTNER_ID), its key in COMMISSIONING_PARTNER_SECRET",
    )
    p.add_argument(
        "--registry",
        help="or sign each partner's rows with its key from this registry (default COMMISSIONING_PARTNERS)",
    )
    p.add_argument("--journal", help="the record of what was sent (default FILE.sent), for safe re-runs")
    p.add_argument("--check", action="store_true", help="check every row and send nothing")
    p.add_argument("--batch-size", type=int, default=1000, help="events per signed batch (at most 1,000)")
    p.add_argument("--json", action="store_true", help="problems as JSON")
    p.set_defaults(func=cmd_import)

    export_sub = sub.add_parser("export", help="open data out of the canonical streams").add_subparsers(
        dest="format", required=True
    )
    p = export_sub.add_parser("ocds", help="OCDS 1.1 release packages, records and a CSV flattening")
    p.add_argument("--output", default="ocds", help="the directory to write to (default ./ocds)")
    p.add_argument(
        "--partnership",
        help="the partnership's key prefix (default COMMISSIONING_PREFIX, with COMMISSIONING_PARTNERSHIP)",
    )
    p.add_argument("--ocid-prefix", default="ocds-xxxxxx", help="your registered OCDS ocid prefix")
    p.add_argument("--publisher", default="Shared commissioning partnership", help="publisher name")
    p.add_argument(
        "--public", action="store_true", help="leave out what is confidential: partners' budgets, bids"
    )
    p.add_argument("--no-csv", action="store_true", help="skip the CSV flattening (flattentool)")
    p.add_argument(
        "--uri", help="where the files will be published (default: the output directory's file: URI)"
    )
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    collector.tune()  # every command holds the state of a partnership (serve, up, demo, rebuild)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as e:
        return _fail(f"invalid setting in the environment: {_setting_errors(e)}")


if __name__ == "__main__":
    sys.exit(main())
