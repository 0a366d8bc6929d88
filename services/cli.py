"""The `commissioning` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from shared.logging import configure_logging
from shared.money import gbp
from shared.partners import PartnerRegistry, PartnerRegistryError
from shared.settings import Settings


def _fail(message: str) -> int:
    print(f"commissioning: {message}", file=sys.stderr)
    return 2


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    from services.runtime import SERVICES, ConfigurationError, serve

    settings = _settings()
    names = args.services or list(SERVICES)
    configure_logging("+".join(names), settings.log_level, settings.log_format)
    if settings.partners is None:
        return _fail("COMMISSIONING_PARTNERS is not set: give the path of the partner registry (TOML)")
    try:
        registry = PartnerRegistry.load(settings.partners)
        asyncio.run(serve(names, settings, registry))
    except (ConfigurationError, PartnerRegistryError) as e:
        return _fail(str(e))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from services.runtime import SERVICES, ConfigurationError, serve
    from shared.redis_server import NoRedisServerError, RedisServer
    from shared.tscip import write_registry

    settings = _settings()
    configure_logging("up", settings.log_level, settings.log_format)
    data_dir = settings.data_dir.resolve()
    server = None
    overrides: dict[str, object] = {}
    if not settings.redis_url:
        try:
            server = RedisServer(data_dir / "redis", port=args.redis_port).start()
        except NoRedisServerError as e:
            return _fail(str(e))
        overrides["redis_url"] = server.url
        print(f"Redis ({server.binary.name}) at {server.url}; data in {server.data_dir}", flush=True)
    if settings.partners is None:
        path = data_dir / "partners.toml"
        if not path.exists():
            write_registry(path)
        overrides["partners"] = path
        print(f"Partner registry: {path} (set COMMISSIONING_PARTNERS to use your own)", flush=True)
    settings = settings.model_copy(update=overrides)
    print(
        f"Dashboard: http://{settings.http_host}:{settings.http_port}/dashboard\n"
        f"HTTP on http://{settings.http_host}:{settings.http_port} "
        "(POST /events, GET /savings, /savings/stream, /health/ready, /metrics, /docs/asyncapi); Ctrl-C stops",
        flush=True,
    )
    try:
        registry = PartnerRegistry.load(settings.partners)  # type: ignore[arg-type]
        asyncio.run(serve(list(SERVICES), settings, registry))
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


def cmd_savings_rebuild(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from services.savings.rebuild import rebuild
    from shared.streams import Streams

    settings = _settings()
    configure_logging("savings-rebuild", "WARNING", settings.log_format)
    if not settings.redis_url:
        return _fail("REDIS_URL is not set: point it at the Redis whose streams to replay")

    async def run() -> dict[str, object]:
        redis = Redis.from_url(settings.redis_url)  # type: ignore[arg-type]
        try:
            return await rebuild(redis, Streams(settings.prefix))
        finally:
            await redis.aclose()

    result = asyncio.run(run())
    print(
        f"rebuilt from {result['entries_read']} entries in {result['seconds']}s: "
        f"{result['events']} events applied, {result['skipped']} unusable entries left out, "
        f"{result['caught_up']} caught up after the swap"
    )
    portfolio = result["portfolio"]
    assert isinstance(portfolio, dict)
    print(f"annual saving {gbp(portfolio['annual_saving'])}, projected {gbp(portfolio['projected_saving'])}, ROI {portfolio['roi']}")
    print("figures unchanged" if result["unchanged"] else f"figures changed; before: {result['before']}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from services import docs

    if args.write:
        for path in docs.write():
            print(f"wrote {path}")
        return 0
    stale = docs.stale()
    for path in stale:
        print(f"out of date: {path} (run: commissioning docs --write)")
    return 1 if stale else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commissioning",
        description="Shared commissioning of public services: the cycle as events on Redis.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run services against REDIS_URL, as a container would")
    p.add_argument("services", nargs="*", metavar="SERVICE", help="needs, procurement, contracts, savings (default: all)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("up", help="everything on one machine, with a private Redis when REDIS_URL is unset")
    p.add_argument("--redis-port", type=int, default=None, help="port for the private Redis (default: a free one)")
    p.set_defaults(func=cmd_up)

    savings = sub.add_parser("savings", help="the savings projection").add_subparsers(dest="action", required=True)
    p = savings.add_parser("rebuild", help="replay the streams into a fresh projection, with progress")
    p.set_defaults(func=cmd_savings_rebuild)

    p = sub.add_parser("docs", help="check (or --write) docs/asyncapi.json and docs/schemas/ against the code")
    p.add_argument("--write", action="store_true", help="write the documents instead of checking them")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("demo", help="the reference partnership end to end, with its figures")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as e:
        return _fail(f"invalid setting in the environment:\n{e}")


if __name__ == "__main__":
    sys.exit(main())
