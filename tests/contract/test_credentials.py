"""The Credentials port's contract (shared.ports), one suite run on both adapters: in memory
(`TestInMemory`) and on a real Redis (`TestRedis`): viewer tokens and sign-in sessions kept by
their digests with the viewer's name, a session ending by itself, revoking a name ending all of
its tokens and sessions, and a sign-in's state read once. (tests/integration/test_reads.py and
test_oidc.py sign in over HTTP.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared import viewers
from shared.adapters.memory import MemoryCredentials
from shared.adapters.redis import RedisCredentials
from shared.ports import Credentials, Unavailable
from shared.redis_client import connect
from shared.streams import Streams
from tests.contract.aio import run


class CredentialsContract:
    @pytest.fixture
    def credentials(self) -> Iterator[Credentials]:
        raise NotImplementedError

    def test_a_token_names_its_viewer_until_the_name_is_revoked(self, credentials: Credentials) -> None:
        ann = run(viewers.issue(credentials, "ann"))
        ann_again = run(viewers.issue(credentials, "ann"))
        bob = run(viewers.issue(credentials, "bob"))
        assert ann.startswith(viewers.PREFIX) and ann != ann_again
        assert run(viewers.viewer(credentials, ann)) == "ann"
        assert run(viewers.viewer(credentials, bob)) == "bob"
        assert run(viewers.viewer(credentials, ann + "x")) is None
        assert run(viewers.viewer(credentials, "not-a-token")) is None
        assert run(viewers.names(credentials)) == ["ann", "bob"]
        assert run(viewers.revoke(credentials, "ann")) == 2
        assert (
            run(viewers.viewer(credentials, ann)) is None
            and run(viewers.viewer(credentials, ann_again)) is None
        )
        assert run(viewers.viewer(credentials, bob)) == "bob", "another's token stands"
        assert run(viewers.names(credentials)) == ["bob"]
        assert run(viewers.revoke(credentials, "ann")) == 0

    def test_a_session_ends_by_itself_or_with_its_name(self, credentials: Credentials) -> None:
        short = run(viewers.issue_session(credentials, "oidc:ann@x.gov.uk", 1))
        long = run(viewers.issue_session(credentials, "oidc:ann@x.gov.uk", 600))
        other = run(viewers.issue_session(credentials, "oidc:bob@x.gov.uk", 600))
        assert run(viewers.viewer(credentials, short)) == "oidc:ann@x.gov.uk"
        assert run(viewers.names(credentials)) == [], "sessions are not viewer tokens"
        time.sleep(1.2)
        assert run(viewers.viewer(credentials, short)) is None, "expired"
        assert run(viewers.viewer(credentials, long)) == "oidc:ann@x.gov.uk"
        assert run(viewers.revoke(credentials, "oidc:ann@x.gov.uk")) == 1
        assert run(viewers.viewer(credentials, long)) is None
        assert run(viewers.viewer(credentials, other)) == "oidc:bob@x.gov.uk"

    def test_a_sign_ins_state_is_read_once_and_not_after_it_expires(self, credentials: Credentials) -> None:
        run(credentials.hold("s-1", '{"nonce": "n"}', 600))
        run(credentials.hold("s-2", "{}", 1))
        assert run(credentials.take("s-1")) == '{"nonce": "n"}'
        assert run(credentials.take("s-1")) is None, "used"
        assert run(credentials.take("unknown")) is None
        time.sleep(1.2)
        assert run(credentials.take("s-2")) is None, "expired"


class TestInMemory(CredentialsContract):
    @pytest.fixture
    def credentials(self) -> Iterator[Credentials]:
        yield MemoryCredentials()


class TestRedis(CredentialsContract):
    @pytest.fixture
    def credentials(self, redis_url: str, prefix: str) -> Iterator[Credentials]:
        client = connect(redis_url)
        yield RedisCredentials(client, Streams(prefix))
        run(client.aclose())

    def test_redis_away_is_unavailable_not_a_redis_error(self, prefix: str) -> None:
        client = connect("redis://127.0.0.1:1")  # nothing listens there
        try:
            with pytest.raises(Unavailable):
                run(RedisCredentials(client, Streams(prefix)).name_of("0" * 64))
        finally:
            run(client.aclose())
