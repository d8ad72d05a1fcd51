"""Purge and KV exactness with nats.py, against expectations captured from nats-server 2.15.1
(run it against one to check: `python purge_scenario.py nats://127.0.0.1:4222`):
STREAM.PURGE with filter + keep and filter + seq, kv.purge_deletes(olderthan=...) keeping the
younger delete markers, and KV keys with wildcard tokens (client-side validation off) stored and
read back as literals."""
import asyncio
import json
import sys

import nats
from nats.js.errors import NotFoundError


async def main(url):
    nc = await nats.connect(url)
    js = nc.jetstream()

    # purge_deletes: markers older than 1 s go, the younger one stays.
    kv = await js.create_key_value(bucket="pd", history=5)
    for k in ["a", "b", "c"]:
        await kv.put(k, b"v")
    await kv.delete("a")
    await kv.purge("b")
    await asyncio.sleep(1.2)
    await kv.delete("c")
    await kv.purge_deletes(olderthan=1)
    info = await js.stream_info("KV_pd")
    assert info.state.messages == 1, info.state
    for k in ["a", "b"]:
        try:
            await js.get_last_msg("KV_pd", f"$KV.pd.{k}")
            raise AssertionError(f"marker of {k} kept")
        except NotFoundError:
            pass
    c = await js.get_last_msg("KV_pd", "$KV.pd.c")
    assert c.headers == {"KV-Operation": "DEL"}, c.headers

    # Keys with wildcard tokens are literals: put then get gives the value back.
    wild = await js.create_key_value(bucket="wild")
    rev = await wild.put("x.>", b"v", validate_keys=False)
    entry = await wild.get("x.>", validate_keys=False)
    assert (entry.key, entry.value, entry.revision) == ("x.>", b"v", rev), entry
    await wild.put("x.*.y", b"w", validate_keys=False)
    entry = await wild.get("x.*.y", validate_keys=False)
    assert entry.value == b"w", entry

    # STREAM.PURGE: (request, purged, surviving offsets 1..10) as nats-server answers them, for
    # ten messages alternating p.0 / p.1.
    await js.add_stream(name="P", subjects=["p.>"])
    cases = [
        ({"filter": "p.0", "keep": 2}, 3, [2, 4, 6, 7, 8, 9, 10]),
        ({"filter": "p.0", "seq": 5}, 2, [2, 4, 5, 6, 7, 8, 9, 10]),
        ({"filter": "p.*", "keep": 3}, 7, [8, 9, 10]),
        ({"filter": "p.*", "seq": 6}, 5, [6, 7, 8, 9, 10]),
        ({"filter": "p.1", "seq": 100}, 5, [1, 3, 5, 7, 9]),
        ({"seq": 4}, 3, [4, 5, 6, 7, 8, 9, 10]),
        ({"keep": 3}, 7, [8, 9, 10]),
    ]
    for req, purged, surviving in cases:
        await js.purge_stream("P")
        base = None
        for i in range(10):
            ack = await js.publish(f"p.{i % 2}", b"x")
            if base is None:
                base = ack.seq - 1
        body = dict(req)
        if "seq" in body:
            body["seq"] += base
        reply = json.loads((await nc.request("$JS.API.STREAM.PURGE.P", json.dumps(body).encode())).data)
        assert reply.get("success") is True and reply["purged"] == purged, (req, reply)
        left = []
        for off in range(1, 11):
            try:
                await js.get_msg("P", base + off)
                left.append(off)
            except NotFoundError:
                pass
        assert left == surviving, (req, left)
    # seq and keep together are refused.
    reply = json.loads(
        (await nc.request("$JS.API.STREAM.PURGE.P", json.dumps({"filter": "p.0", "seq": 5, "keep": 1}).encode())).data
    )
    assert reply["error"]["err_code"] == 10003, reply

    await nc.close()
    print("purge_scenario: ok")


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), 60))
