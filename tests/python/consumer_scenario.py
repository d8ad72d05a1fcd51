"""JetStream pull consumers with an unmodified nats.py client. Exits non-zero on any failure.
Written against nats-server (`nats-server -js`) and run unchanged against the agent."""
import asyncio
import sys
import time

import nats
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError


async def sync(nc) -> None:
    """A server-side barrier (see core_scenario.py): a request nobody answers comes back after
    everything this client sent before it, acks included."""
    try:
        await nc.request("sync.nobody.listens", b"", timeout=5)
        raise AssertionError("sync expected no responders")
    except NoRespondersError:
        pass


async def info_when(js, stream, name, check, what):
    """Consumer info once `check` holds. Plain acks are fire and forget: the barrier proves the
    server received them, not that the consumer applied them, so give it a moment."""
    deadline = time.monotonic() + 5
    while True:
        ci = await js.consumer_info(stream, name)
        if check(ci) or time.monotonic() > deadline:
            assert check(ci), f"{what}: {ci}"
            return ci
        await asyncio.sleep(0.05)


def seqs(msgs):
    return [(m.metadata.sequence.stream, m.metadata.num_delivered) for m in msgs]


async def main(url: str) -> None:
    nc = await nats.connect(url, name="py-consumers")
    js = nc.jetstream()

    await js.add_stream(name="PYCONS", subjects=["py.c.>"])
    for i in range(10):
        await js.publish("py.c.a", f"a{i}".encode())

    # pull_subscribe creates the durable consumer.
    psub = await js.pull_subscribe("py.c.a", durable="PYDUR", stream="PYCONS")
    ci = await js.consumer_info("PYCONS", "PYDUR")
    assert ci.name == "PYDUR" and ci.config.durable_name == "PYDUR", ci
    assert ci.config.ack_policy == api.AckPolicy.EXPLICIT, ci.config
    assert ci.config.filter_subject == "py.c.a", ci.config
    assert ci.num_pending == 10 and ci.num_ack_pending == 0, ci

    msgs = await psub.fetch(4, timeout=5)
    assert seqs(msgs) == [(1, 1), (2, 1), (3, 1), (4, 1)], seqs(msgs)
    assert msgs[0].data == b"a0" and msgs[0].subject == "py.c.a", msgs[0]
    assert msgs[0].metadata.stream == "PYCONS" and msgs[0].metadata.consumer == "PYDUR"
    assert msgs[0].metadata.num_pending == 9, msgs[0].metadata
    assert msgs[3].metadata.num_pending == 6, msgs[3].metadata
    for m in msgs:
        await m.ack()
    await sync(nc)
    ci = await info_when(
        js, "PYCONS", "PYDUR", lambda c: c.num_ack_pending == 0, "four acks applied"
    )
    assert ci.ack_floor.stream_seq == 4 and ci.delivered.stream_seq == 4, ci
    assert ci.num_pending == 6, ci

    # nak: redelivered at once with a higher delivery count.
    msgs = await psub.fetch(3, timeout=5)
    assert seqs(msgs) == [(5, 1), (6, 1), (7, 1)], seqs(msgs)
    await msgs[0].ack()
    await msgs[1].ack()
    await msgs[2].nak()
    await sync(nc)
    # nats-server applies a client's acks before its next pull request; so does the agent.
    await sync(nc)
    again = await psub.fetch(1, timeout=5)
    assert seqs(again) == [(7, 2)], seqs(again)
    await again[0].ack_sync()

    # the rest, then nothing: acked messages never come back.
    rest = await psub.fetch(10, timeout=2)
    assert seqs(rest) == [(8, 1), (9, 1), (10, 1)], seqs(rest)
    for m in rest:
        await m.ack_sync()
    try:
        extra = await psub.fetch(1, timeout=1)
        raise AssertionError(f"nothing should be left, got {seqs(extra)}")
    except NatsTimeoutError:
        pass
    ci = await js.consumer_info("PYCONS", "PYDUR")
    assert ci.num_ack_pending == 0 and ci.num_pending == 0, ci
    assert ci.ack_floor.stream_seq == 10 and ci.delivered.stream_seq == 10, ci
    assert ci.delivered.consumer_seq == 11, ci

    # add_consumer with a short ack wait: unacked messages are redelivered after it.
    ci = await js.add_consumer(
        "PYCONS",
        durable_name="PYWAIT",
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=1,
        filter_subject="py.c.b",
    )
    assert ci.config.ack_wait == 1, ci.config
    for i in range(2):
        await js.publish("py.c.b", f"b{i}".encode())
    wsub = await js.pull_subscribe("py.c.b", durable="PYWAIT", stream="PYCONS")
    first = await wsub.fetch(2, timeout=5)
    assert seqs(first) == [(11, 1), (12, 1)], seqs(first)
    await asyncio.sleep(1.5)
    second = await wsub.fetch(2, timeout=5)
    assert seqs(second) == [(11, 2), (12, 2)], seqs(second)
    ci = await js.consumer_info("PYCONS", "PYWAIT")
    assert ci.num_ack_pending == 2 and ci.num_redelivered == 2, ci
    for m in second:
        await m.ack_sync()
    ci = await js.consumer_info("PYCONS", "PYWAIT")
    assert ci.num_ack_pending == 0 and ci.ack_floor.stream_seq == 12, ci

    infos = await js.consumers_info("PYCONS")
    assert sorted(c.name for c in infos) == ["PYDUR", "PYWAIT"], infos

    assert await js.delete_consumer("PYCONS", "PYWAIT")
    try:
        await js.consumer_info("PYCONS", "PYWAIT")
        raise AssertionError("consumer should be gone")
    except NotFoundError:
        pass

    # headers_only: the headers and Nats-Msg-Size (the payload's size), no body.
    await js.add_consumer(
        "PYCONS",
        durable_name="PYHO",
        ack_policy=api.AckPolicy.EXPLICIT,
        headers_only=True,
        filter_subject="py.c.h",
    )
    await js.publish("py.c.h", b"hello world", headers={"X-A": "1"})
    hsub = await js.pull_subscribe_bind("PYHO", stream="PYCONS")
    (h,) = await hsub.fetch(1, timeout=5)
    assert h.data == b"", h.data
    assert h.headers == {"X-A": "1", "Nats-Msg-Size": "11"}, h.headers

    # backoff: fewer deliveries than backoff values is refused; redeliveries follow the list.
    try:
        await js.add_consumer(
            "PYCONS",
            durable_name="PYBADBO",
            ack_policy=api.AckPolicy.EXPLICIT,
            backoff=[1, 2, 3],
            max_deliver=2,
        )
        raise AssertionError("backoff longer than max_deliver accepted")
    except BadRequestError as e:
        assert e.err_code == 10116, e
    ci = await js.add_consumer(
        "PYCONS",
        durable_name="PYBO",
        ack_policy=api.AckPolicy.EXPLICIT,
        backoff=[0.3, 0.9],
        max_deliver=3,
        filter_subject="py.c.bo",
    )
    assert ci.config.ack_wait == 0.3, ci.config
    await js.publish("py.c.bo", b"x")
    bsub = await js.pull_subscribe_bind("PYBO", stream="PYCONS")
    at = []
    while len(at) < 3:
        (m,) = await bsub.fetch(1, timeout=5)
        assert m.metadata.num_delivered == len(at) + 1, m.metadata
        at.append(time.monotonic())
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert 0.25 <= gaps[0] <= 0.8 and 0.85 <= gaps[1] <= 1.6, gaps
    try:
        await bsub.fetch(1, timeout=1.5)
        raise AssertionError("delivered past max_deliver")
    except NatsTimeoutError:
        pass

    await js.delete_stream("PYCONS")
    await nc.close()
    print("python consumer scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
