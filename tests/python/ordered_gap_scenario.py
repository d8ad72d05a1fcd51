"""nats.py's ordered consumer recovering from a gap. One delivery of its consumer is claimed behind
its back at the control plane, so the next message it receives skips a consumer sequence; the
client must notice, replace its consumer (starting after the last stream sequence it got) and
still see every message exactly once and in order.

Usage: ordered_gap_scenario.py NATS_URL CONTROL_PLANE_URL GROUP_ID GROUP_KEY
Exits non-zero on any failure."""
import asyncio
import json
import sys
import time
import urllib.request

import nats


def claim_one(cp_url: str, group_id: str, key: str, consumer: str):
    """Claims one delivery of `consumer` straight from the control plane; its stream sequence,
    or None when there was nothing to claim."""
    req = urllib.request.Request(
        f"{cp_url}/v1/consumers/claim",
        data=json.dumps({"stream": "O", "consumer": consumer, "batch": 1}).encode(),
        headers={
            "content-type": "application/json",
            "x-infinistream-group-id": group_id,
            "authorization": f"Bearer {key}",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = json.loads(resp.read())
    assert "error" not in body, body
    msgs = body.get("messages") or []
    return msgs[0]["location"]["seq"] if msgs else None


def steal(cp_url, group_id, key, consumer, for_s=1.0):
    """Retries for `for_s`: the agent polls every 50 ms, so a fresh message is usually ours."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        seq = claim_one(cp_url, group_id, key, consumer)
        if seq is not None:
            return seq
        time.sleep(0.002)
    return None


async def consumer_names(nc):
    r = await nc.request("$JS.API.CONSUMER.NAMES.O", b"", timeout=5)
    return json.loads(r.data).get("consumers") or []


async def main(url: str, cp_url: str, group_id: str, key: str) -> None:
    nc = await nats.connect(url, name="py-ordered-gap")
    js = nc.jetstream()
    await js.add_stream(name="O", subjects=["o.>"])
    for i in range(20):
        await js.publish("o.x", str(i).encode())

    sub = await js.subscribe("o.>", ordered_consumer=True)
    got = [int((await sub.next_msg(timeout=10)).data) for _ in range(20)]
    names = await consumer_names(nc)
    assert len(names) == 1, names
    first = names[0]

    published, stolen = 20, None
    for _ in range(50):
        pub = asyncio.ensure_future(js.publish("o.x", str(published).encode()))
        stolen = await asyncio.to_thread(steal, cp_url, group_id, key, first)
        await pub
        published += 1
        if stolen is not None:
            break
        got.append(int((await sub.next_msg(timeout=10)).data))
    assert stolen is not None, "the agent always delivered first"

    for i in range(published, published + 10):
        await js.publish("o.x", str(i).encode())
    total = published + 10
    while len(got) < total:
        got.append(int((await sub.next_msg(timeout=10)).data))
    assert got == list(range(total)), f"stream seq {stolen} was taken: {got}"

    # The client replaced its consumer with one of another name.
    names = await consumer_names(nc)
    assert any(n != first for n in names), f"no new consumer: {names}"

    await nc.close()
    print("ordered gap scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
