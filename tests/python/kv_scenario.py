"""KV with an unmodified nats.py client: the async-nats KV scenario of tests/kv.rs. Exits non-zero
on any failure."""
import asyncio
import sys

import nats
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError


async def main(url: str) -> None:
    nc = await nats.connect(url, name="py-kv")
    js = nc.jetstream()
    kv = await js.create_key_value(bucket="PYKV", history=3)

    r1 = await kv.put("color", b"red")
    e = await kv.get("color")
    assert e.value == b"red" and e.revision == r1, e

    # create fails when the key exists; update needs the right revision
    try:
        await kv.create("color", b"blue")
        raise AssertionError("create over an existing key")
    except KeyWrongLastSequenceError:
        pass
    r2 = await kv.update("color", b"green", last=r1)
    try:
        await kv.update("color", b"stale", last=r1)
        raise AssertionError("update with a stale revision")
    except KeyWrongLastSequenceError:
        pass
    assert (await kv.get("color")).value == b"green"

    # history keeps the last 3 values
    await kv.put("color", b"v3")
    await kv.put("color", b"v4")
    hist = await kv.history("color")
    assert [h.value for h in hist] == [b"green", b"v3", b"v4"], [h.value for h in hist]

    # watch sees updates and deletes
    watcher = await kv.watchall()
    initial = []
    while True:
        u = await watcher.updates(timeout=5)
        if u is None:  # end of the initial values
            break
        initial.append(u.key)
    assert initial == ["color"], initial
    await kv.put("shape", b"circle")
    u = await watcher.updates(timeout=5)
    assert (u.key, u.value) == ("shape", b"circle"), u
    await kv.delete("shape")
    u = await watcher.updates(timeout=5)
    assert u.key == "shape" and u.operation == "DEL", u
    await watcher.stop()

    keys = await kv.keys()
    assert sorted(keys) == ["color"], keys

    await kv.purge("color")
    try:
        await kv.get("color")
        raise AssertionError("purged key should be gone")
    except KeyNotFoundError:
        pass
    assert r2 > r1

    await nc.close()
    print("python kv scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
