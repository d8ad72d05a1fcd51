"""Core NATS scenario with an unmodified nats.py client. Exits non-zero on any failure."""
import asyncio
import sys

import nats
from nats.errors import NoRespondersError


async def sync(nc) -> None:
    """A server-side barrier. nats.py's flush() puts its PING at the front of the client's pending
    buffer, ahead of SUBs not yet written, so its PONG proves nothing about them. A request nobody
    answers travels behind them and comes back (no responders) once the server has seen them."""
    try:
        await nc.request("sync.nobody.listens", b"", timeout=5)
        raise AssertionError("sync expected no responders")
    except NoRespondersError:
        pass


async def main(url: str) -> None:
    nc = await nats.connect(url, name="py-core")
    other = await nats.connect(url, name="py-other")

    # publish / subscribe with wildcards
    sub = await nc.subscribe("py.*.x")
    full = await nc.subscribe("py.>")
    await sync(nc)
    await other.publish("py.a.x", b"hello")
    await other.publish("py.b.y", b"not for *.x")
    await sync(other)
    m = await sub.next_msg(timeout=5)
    assert (m.subject, m.data) == ("py.a.x", b"hello"), m
    assert (await full.next_msg(timeout=5)).subject == "py.a.x"
    assert (await full.next_msg(timeout=5)).subject == "py.b.y"
    # nats.py stalls requests while a callback-less subscription holds undelivered messages
    # (nats-server shows the same), so these end here.
    await sub.unsubscribe()
    await full.unsubscribe()

    # headers round trip
    hsub = await nc.subscribe("py.headers")
    await sync(nc)
    await other.publish("py.headers", b"body", headers={"X-Trace": "t-1"})
    hm = await hsub.next_msg(timeout=5)
    assert hm.headers and hm.headers.get("X-Trace") == "t-1", hm.headers
    assert hm.data == b"body"
    await hsub.unsubscribe()

    # request / reply
    async def echo(msg):
        await msg.respond(b"echo:" + msg.data)

    await nc.subscribe("py.svc", cb=echo)
    await sync(nc)
    r = await other.request("py.svc", b"ping", timeout=5)
    assert r.data == b"echo:ping", r.data

    # no responders
    try:
        await other.request("nobody.home", b"?", timeout=5)
        raise AssertionError("expected no responders")
    except NoRespondersError:
        pass

    # queue group: each message to exactly one member
    got = []
    all_in = asyncio.Event()

    async def member(msg):
        got.append(msg.data)
        if len(got) >= 50:
            all_in.set()

    await nc.subscribe("py.q", queue="workers", cb=member)
    await other.subscribe("py.q", queue="workers", cb=member)
    await sync(nc)
    await sync(other)
    for i in range(50):
        await other.publish("py.q", str(i).encode())
    await sync(other)
    await asyncio.wait_for(all_in.wait(), timeout=10)
    assert sorted(int(x) for x in got) == list(range(50)), got

    # auto-unsubscribe
    limited = await nc.subscribe("py.limited", max_msgs=2)
    await sync(nc)
    for i in range(5):
        await other.publish("py.limited", str(i).encode())
    await sync(other)
    a = await limited.next_msg(timeout=5)
    b = await limited.next_msg(timeout=5)
    assert (a.data, b.data) == (b"0", b"1")

    await nc.close()
    await other.close()
    print("python core scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
