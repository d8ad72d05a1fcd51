"""Core NATS across three servers with an unmodified nats.py client: wildcards, a queue group
spread over two servers (each message once), request/reply and a nats.micro service reached from
another server, no responders. Run against three agents of one group and against a three-node
nats-server cluster. Exits non-zero on any failure."""
import asyncio
import json
import sys

import nats
from nats.errors import NoRespondersError
from nats.micro import add_service
from nats.micro.service import EndpointConfig

WAIT = 10


async def barrier(subscriber, publisher) -> None:
    """Waits until what `subscriber` subscribed so far is known where `publisher` is: a fresh
    subscription, announced behind the earlier ones, is probed from `publisher` until a probe
    arrives."""
    subject = "barrier." + subscriber.new_inbox()
    probe = await subscriber.subscribe(subject)
    await subscriber.flush()
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        await publisher.publish(subject, b"")
        await publisher.flush()
        try:
            await probe.next_msg(timeout=0.02)
            break
        except nats.errors.TimeoutError:
            assert asyncio.get_running_loop().time() < deadline, "interest never crossed"
    await probe.unsubscribe()


async def wildcards_in_order(a, b, c) -> None:
    star = await b.subscribe("py.*.x")
    full = await c.subscribe("py.>")
    await barrier(b, a)
    await barrier(c, a)
    for i in range(100):
        await a.publish("py.o.x", str(i).encode())
    await a.publish("py.o.y", b"y")
    await a.flush()
    for i in range(100):
        assert (await star.next_msg(timeout=WAIT)).data == str(i).encode(), "star order"
        assert (await full.next_msg(timeout=WAIT)).data == str(i).encode(), "full order"
    assert (await full.next_msg(timeout=WAIT)).subject == "py.o.y"
    await star.unsubscribe()
    await full.unsubscribe()


async def queue_group_once(a, b, c) -> None:
    got = {}
    seen = set()
    twice = []
    done = asyncio.Event()
    n = 200

    def member(server):
        async def on(msg):
            # nats.py swallows a callback's exception: record, assert below.
            if msg.data in seen:
                twice.append(msg.data)
            seen.add(msg.data)
            got[server] = got.get(server, 0) + 1
            if len(seen) == n:
                done.set()

        return on

    for server, nc in (("b", b), ("c", c)):
        for _ in range(2):
            await nc.subscribe("py.work", queue="workers", cb=member(server))
    await barrier(b, a)
    await barrier(c, a)
    for i in range(n):
        await a.publish("py.work", str(i).encode())
    await a.flush()
    await asyncio.wait_for(done.wait(), WAIT)
    # A marker behind the messages on each member's server proves nothing more is on its way.
    for nc in (b, c):
        marker = await nc.subscribe("py.work.done." + nc.new_inbox())
        await barrier(nc, a)
        await marker.unsubscribe()
    assert not twice, f"delivered twice: {twice}"
    assert len(seen) == n, len(seen)
    assert sum(got.values()) == n, got
    assert got.get("b", 0) > 0 and got.get("c", 0) > 0, f"spread over both servers: {got}"


async def micro_service_from_another_server(a, b, c) -> None:
    async def echo(req):
        await req.respond(b"re:" + req.data)

    services = []
    for nc in (b, c):
        svc = await add_service(nc, name="echo", version="1.0.0", description="routes")
        await svc.add_endpoint(EndpointConfig(name="echo", handler=echo))
        services.append(svc)
    await barrier(b, a)
    await barrier(c, a)

    for i in range(40):
        r = await a.request("echo", str(i).encode(), timeout=WAIT)
        assert r.data == b"re:" + str(i).encode(), r.data

    # Discovery: every instance, wherever it is connected, answers $SRV.PING.
    inbox = a.new_inbox()
    pings = await a.subscribe(inbox)
    await a.publish("$SRV.PING.echo", b"", reply=inbox)
    ids = set()
    for _ in range(2):
        m = await pings.next_msg(timeout=WAIT)
        ids.add(json.loads(m.data)["id"])
    assert ids == {s.id for s in services}, ids
    await pings.unsubscribe()

    # Each instance counted the requests it served; together exactly the 40 sent.
    served = 0
    for svc in services:
        r = await a.request(f"$SRV.STATS.echo.{svc.id}", b"", timeout=WAIT)
        stats = json.loads(r.data)
        served += sum(e["num_requests"] for e in stats["endpoints"])
    assert served == 40, served

    # One instance leaves: the other answers every request.
    await services[1].stop()
    await barrier(c, a)
    for i in range(20):
        r = await a.request("echo", b"again", timeout=WAIT)
        assert r.data == b"re:again", r.data
    await services[0].stop()


async def no_responders_only_when_nobody_anywhere(a, b) -> None:
    try:
        await a.request("py.nobody", b"?", timeout=WAIT)
        raise AssertionError("expected no responders")
    except NoRespondersError:
        pass
    async def here(msg):
        await msg.respond(b"here")

    sub = await b.subscribe("py.somebody", cb=here)
    await barrier(b, a)
    assert (await a.request("py.somebody", b"?", timeout=WAIT)).data == b"here"
    await sub.unsubscribe()


async def main(urls) -> None:
    a = await nats.connect(urls[0], name="py-routes-a")
    b = await nats.connect(urls[1], name="py-routes-b")
    c = await nats.connect(urls[2], name="py-routes-c")
    await wildcards_in_order(a, b, c)
    await queue_group_once(a, b, c)
    await micro_service_from_another_server(a, b, c)
    await no_responders_only_when_nobody_anywhere(a, b)
    for nc in (a, b, c):
        await nc.close()
    print("routes_scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:4]))
