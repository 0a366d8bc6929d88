"""The bus: one reliable-consumption mechanism over Redis Streams, used by every service."""

from shared.bus.consumer import (
    Applied,
    Bus,
    Effect,
    Entry,
    Poison,
    Subscription,
    consumer_name,
    event_subscription,
)
from shared.bus.retention import Retention

__all__ = [
    "Applied",
    "Bus",
    "Effect",
    "Entry",
    "Poison",
    "Retention",
    "Subscription",
    "consumer_name",
    "event_subscription",
]
