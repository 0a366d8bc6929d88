"""Key names per partnership, and which partnerships a process serves (shared.settings)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.crc import key_slot

from shared.settings import Settings
from shared.streams import Streams


def test_without_a_partnership_the_keys_are_as_they_were() -> None:
    s = Settings(prefix="commissioning")
    assert Streams(s.key_prefix).inbound == "commissioning:inbound"
    assert s.served == [None]


def test_a_partnerships_keys_share_one_hash_slot() -> None:
    s = Settings(prefix="commissioning", partnership="north")
    keys = Streams(s.key_prefix)
    assert keys.inbound == "commissioning:{north}:inbound"
    names = [keys.inbound, keys.dead_letter, keys.requests("needs"), keys.seen("savings"), keys.errors("needs"),
             keys.state("savings", "events"), keys.rejected("tamworth-bc"), keys.accepted("bid.submitted")]
    assert {key_slot(n.encode()) for n in names} == {key_slot(b"north")}


def test_a_process_of_several_partnerships_serves_each_on_its_own_port() -> None:
    s = Settings(partnerships="north,south,north", http_port=9000)
    assert s.served == ["north", "south"]
    south = s.for_partnership("south", 1)
    assert (south.partnership, south.http_port, south.key_prefix) == ("south", 9001, "commissioning:{south}")
    assert Settings(partnerships="a,b", http_port=0).for_partnership("b", 1).http_port == 0  # any free port


@pytest.mark.parametrize("bad", [{"partnership": "no{braces}"}, {"partnerships": "a;b"}, {"redis_mode": "sentinel"}])
def test_names_that_would_break_the_hash_tag_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)
