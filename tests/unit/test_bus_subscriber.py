"""The bus's FastStream subscription (shared.bus.consumer): its stream is not copied at every
read when no prefix is added, and is prefixed as FastStream's own when one is."""

from __future__ import annotations

from faststream.redis import StreamSub

from shared.bus.consumer import _StreamSub


def test_the_stream_is_copied_only_to_add_a_prefix() -> None:
    sub = _StreamSub("p:need.identified", group="savings", consumer="c-1", batch=True, last_id=">")
    assert sub.add_prefix("") is sub
    prefixed = sub.add_prefix("x:")
    plain = StreamSub("p:need.identified", group="savings", consumer="c-1", batch=True, last_id=">")
    assert prefixed is not sub and prefixed.name == plain.add_prefix("x:").name == "x:p:need.identified"
    assert (prefixed.group, prefixed.consumer, prefixed.batch) == ("savings", "c-1", True)
    assert sub.name == "p:need.identified"  # the original is left as it was
