"""HTTP batch mode (contract 1.1) against a real `commissioning serve gateway` process, sent the way
a partner system would: events built and written in structured mode by the official CloudEvents
Python SDK, put in a JSON array, the whole body signed with HMAC-SHA256, posted with httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from shared.partners import sign
from tests.support import PARTNERS, Proc, need_data, serve, service_env, wait_for

pytestmark = pytest.mark.integration

BATCH = "application/cloudevents-batch+json"
ME = "staffordshire-cc"


def sdk_event(
    data: dict[str, Any], event_id: str, partner: str = ME, etype: str = "need.identified"
) -> bytes:
    """One event as the SDK writes it in structured mode."""
    ce = CloudEvent(
        attributes={
            "id": event_id,
            "source": f"/partners/{partner}",
            "type": etype,
            "datacontenttype": "application/json",
        },
        data=data,
    )
    message = to_structured(ce, JSONFormat())
    assert message.headers["content-type"] == "application/cloudevents+json"
    return message.body


def post(proc: Proc, body: bytes, secret: str = PARTNERS[ME], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{proc.url}/events",
        content=body,
        timeout=30,
        headers={"Content-Type": BATCH, "X-Signature": "sha256=" + sign(secret, body), **headers},
    )


@pytest.fixture
def gateway(redis_url: str, prefix: str, partners_path: Path, tmp_path: Path) -> Iterator[Proc]:
    # the needs service too: it owns `need.identified`, whichever process ends up deciding it
    proc = serve(tmp_path, service_env(redis_url, prefix, partners_path), "needs").wait_ready()
    yield proc
    assert proc.terminate() == 0, proc.log()


def test_a_batch_from_the_sdk_is_answered_per_event_in_order_and_counts_each_event_once(
    gateway: Proc, r: redis.Redis, prefix: str
) -> None:
    events = [
        sdk_event(need_data(n=1), "need-1"),
        sdk_event(need_data(n=2, annual_budget="12.345"), "need-2"),  # 3 decimal places: invalid
        sdk_event(need_data(n=3), "need-3"),
        sdk_event(need_data(partner="tamworth-bc", n=4), "need-4"),  # names another partner in data
        sdk_event(need_data(partner="tamworth-bc", n=5), "need-5", partner="tamworth-bc"),  # another source
    ]
    body = b"[" + b", ".join(events) + b"]"
    answer = post(gateway, body)
    assert answer.status_code == 207, answer.text
    results = answer.json()
    assert [(x["id"], x["status"]) for x in results] == [
        ("need-1", 202),
        ("need-2", 422),
        ("need-3", 202),
        ("need-4", 403),
        ("need-5", 403),
    ]
    assert results[1]["reason"]["code"] == "invalid_data"
    assert results[1]["reason"]["errors"][0]["loc"] == "annual_budget"
    assert results[3]["reason"]["code"] == results[4]["reason"]["code"] == "acting_for_another"

    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 2, 30, what="the needs service's decisions")
    accepted = r.xrange(f"{prefix}:need.identified")
    assert [f[b"event"] for _, f in accepted] == [events[0], events[2]], "each event's own bytes, as sent"
    rejected = r.xrange(f"{prefix}:rejected:{ME}")
    assert [json.loads(f[b"reason"])["code"] for _, f in rejected] == [
        "invalid_data",
        "acting_for_another",
        "acting_for_another",
    ]
    assert rejected[0][1][b"event"] == events[1]
    assert not r.exists(f"{prefix}:rejected:tamworth-bc"), "the signer owns what it sent"

    # the same batch again: every accepted event is a duplicate, counted once
    again = post(gateway, body).json()
    assert [x["status"] for x in again] == [202, 422, 202, 403, 403]
    assert again[0].get("duplicate") is True and again[2].get("duplicate") is True
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 2, 30, what="the needs service's decisions")

    # an event sent alone after it came in a batch is the same event (source + id)
    alone = httpx.post(
        f"{gateway.url}/events",
        content=events[0],
        headers={
            "Content-Type": "application/cloudevents+json",
            "X-Signature": "sha256=" + sign(PARTNERS[ME], events[0]),
        },
    )
    assert alone.status_code == 202
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 2, 30, what="the needs service's decisions")


def test_a_batch_is_refused_whole_when_its_signature_shape_or_size_is_wrong(
    gateway: Proc, r: redis.Redis, prefix: str
) -> None:
    one = sdk_event(need_data(n=1), "need-1")
    cases = [
        (post(gateway, b"[" + one + b"]", secret="not-the-key"), 401, "bad_signature"),
        (post(gateway, one), 422, "malformed_json"),  # an event, not an array
        (post(gateway, b"[" + one + b","), 422, "malformed_json"),
        (post(gateway, b"[]"), 422, "empty_batch"),
        (post(gateway, b"[" + b",".join([one] * 1001) + b"]"), 413, "too_many_events"),
    ]
    for answer, status, code in cases:
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    stranger = b"[" + sdk_event(need_data(partner="nobody"), "n-1", partner="nobody") + b"]"
    answer = post(gateway, stranger, secret="k")
    assert (answer.status_code, answer.json()["code"]) == (401, "unknown_partner")
    unsigned = httpx.post(f"{gateway.url}/events", content=b"[" + one + b"]", headers={"Content-Type": BATCH})
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "missing_signature")

    # over 4 MiB: refused from Content-Length, before the body is read
    big = b"[" + b",".join([sdk_event(need_data(n=1, outcomes=["x" * 60_000]), "big")] * 80) + b"]"
    assert len(big) > 4 * 1024 * 1024
    too_large = post(gateway, big)
    assert (too_large.status_code, too_large.json()["code"]) == (413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once 4 MiB have been read
        yield b"["
        for _ in range(80):
            yield big[1:60_100]

    streamed = httpx.post(
        f"{gateway.url}/events",
        content=chunks(),
        timeout=30,
        headers={"Content-Type": BATCH, "X-Signature": "sha256=" + sign(PARTNERS[ME], b"")},
    )
    assert (streamed.status_code, streamed.json()["code"]) == (413, "too_large")
    assert r.xlen(f"{prefix}:need.identified") == 0 and not r.exists(f"{prefix}:rejected:{ME}")

    # an event over 64 KiB in a batch is refused on its own
    huge = sdk_event(need_data(n=9, outcomes=["x" * 1000] * 70), "huge")
    answer = post(gateway, b"[" + huge + b"," + one + b"]")
    assert [(x["status"], x.get("reason", {}).get("code")) for x in answer.json()] == [
        (413, "too_large"),
        (202, None),
    ]

    # exactly 1,000 events is a batch
    thousand = [sdk_event(need_data(n=i), f"k-{i}") for i in range(1000)]
    answer = post(gateway, b"[" + b",".join(thousand) + b"]")
    assert answer.status_code == 207 and len(answer.json()) == 1000
    assert all(x["status"] == 202 for x in answer.json())
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 1 + 1000, 30, what="the needs service's decisions")


def binary_request(
    gateway: Proc,
    data: dict[str, Any],
    event_id: str,
    secret: str = PARTNERS[ME],
    covered: tuple[str, ...] | None = None,
) -> httpx.Request:
    """An event in binary mode as the SDK writes it, signed as RFC 9421 says with the maintained
    http-message-signatures library (HMAC-SHA256, keyid the partner)."""
    ce = CloudEvent(
        attributes={
            "id": event_id,
            "source": f"/partners/{ME}",
            "type": "need.identified",
            "datacontenttype": "application/json",
        },
        data=data,
    )
    message = to_binary(ce, JSONFormat())
    request = httpx.Request("POST", f"{gateway.url}/events", headers=message.headers, content=message.body)
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={ME: secret.encode()}),
    )
    ce_headers = sorted(h for h in message.headers if h.startswith("ce-"))
    signer.sign(
        request,
        key_id=ME,
        body=message.body,
        covered_component_ids=covered or ("@method", "@path", "content-type", "content-digest", *ce_headers),
    )
    return request


def test_binary_mode_signed_with_http_message_signatures_is_checked_as_if_structured(
    gateway: Proc, r: redis.Redis, prefix: str
) -> None:
    with httpx.Client() as client:
        ok = client.send(binary_request(gateway, need_data(n=1), "bin-1"))
        assert (ok.status_code, ok.json()["id"]) == (202, "bin-1")
        assert client.send(binary_request(gateway, need_data(n=1), "bin-1")).status_code == 202
        wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 1, 30, what="the needs service's decision")
        [(_, fields)] = r.xrange(f"{prefix}:need.identified")
        stored = json.loads(fields[b"event"])
        assert (stored["id"], stored["source"], stored["data"]) == (
            "bin-1",
            f"/partners/{ME}",
            need_data(n=1),
        )

        tampered = binary_request(gateway, need_data(n=2), "bin-2")
        tampered.headers["ce-type"] = "investment.recorded"  # a signed header changed on the way
        refused = client.send(tampered)
        assert (refused.status_code, refused.json()["code"]) == (401, "bad_signature")
        changed = binary_request(gateway, need_data(n=2), "bin-2")
        changed.stream = httpx.ByteStream(changed.content.replace(b"51234.00", b"91234.00"))
        refused = client.send(changed)
        assert (refused.status_code, refused.json()["code"]) == (401, "bad_signature")
        uncovered = binary_request(
            gateway,
            need_data(n=2),
            "bin-2",
            covered=("@method", "@path", "content-digest", "ce-id", "ce-source"),
        )
        assert client.send(uncovered).json()["code"] == "bad_signature", "ce-type must be covered"
        assert (
            client.send(binary_request(gateway, need_data(n=2), "bin-2", secret="wrong")).status_code == 401
        )
        unsigned = binary_request(gateway, need_data(n=2), "bin-2")
        del unsigned.headers["signature"]
        assert client.send(unsigned).json()["code"] == "missing_signature"
        invalid = client.send(binary_request(gateway, need_data(n=3, annual_budget="1.234"), "bin-3"))
        assert (invalid.status_code, invalid.json()["code"]) == (422, "invalid_data")
    wait_for(lambda: r.xlen(f"{prefix}:need.identified") == 1, 30, what="the needs service's decisions")
    codes = [json.loads(f[b"reason"])["code"] for _, f in r.xrange(f"{prefix}:rejected:{ME}")]
    assert codes == ["bad_signature"] * 4 + ["missing_signature", "invalid_data"]
