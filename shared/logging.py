"""structlog, set up once per process: JSON when not on a terminal, service and ids bound."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

_configured = False

#: the event being handled (id, type, correlation id), added to each line logged meanwhile by
#: `add_event`: one context variable set an event, where binding the three with structlog
#: cost 7% of the samples at 8,000 contracts (py-spy) whether a line was logged or not
_EVENT: ContextVar[tuple[str, str | None, str | None] | None] = ContextVar("handling", default=None)


class handling:  # lower case: used as a function, `with handling(...):`
    """Log lines written inside carry the event's `event_id`, `event_type`, `correlation_id`.
    (A class rather than `contextlib.contextmanager`: it is entered for every event, and the
    generator's machinery cost 3% of the samples at 2,000 contracts.)"""

    __slots__ = ("_event", "_token")

    def __init__(self, event_id: str, event_type: str | None, correlation_id: str | None) -> None:
        self._event = (event_id, event_type, correlation_id)

    def __enter__(self) -> None:
        self._token = _EVENT.set(self._event)

    def __exit__(self, *_: object) -> None:
        _EVENT.reset(self._token)


def add_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the event being handled (`handling`), unless the line says."""
    current = _EVENT.get()
    if current is not None:
        event_dict.setdefault("event_id", current[0])
        if current[1] is not None:
            event_dict.setdefault("event_type", current[1])
        event_dict.setdefault("correlation_id", current[2])
    return event_dict


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    global _configured
    if _configured:
        structlog.contextvars.bind_contextvars(service=service)
        return
    _configured = True
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_event,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # FastStream and uvicorn log through the standard library: same stream, same level.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(message)s")
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
