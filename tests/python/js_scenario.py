"""JetStream write path with an unmodified nats.py client. Exits non-zero on any failure."""
import asyncio
import sys

import nats
from nats.js.errors import APIError


async def main(url: str) -> None:
    nc = await nats.connect(url, name="py-js")
    js = nc.jetstream()

    info = await js.add_stream(name="PYSTREAM", subjects=["py.js.>"], allow_direct=True)
    assert info.config.name == "PYSTREAM", info

    acks = [await js.publish("py.js.a", f"m{i}".encode()) for i in range(5)]
    assert [a.seq for a in acks] == [1, 2, 3, 4, 5], acks
    assert all(a.stream == "PYSTREAM" for a in acks)

    # dedupe
    first = await js.publish("py.js.d", b"once", headers={"Nats-Msg-Id": "py-1"})
    again = await js.publish("py.js.d", b"once", headers={"Nats-Msg-Id": "py-1"})
    assert again.duplicate and again.seq == first.seq, (first, again)

    # expected last sequence refused with err_code 10071
    try:
        await js.publish("py.js.a", b"x", headers={"Nats-Expected-Last-Sequence": "1"})
        raise AssertionError("expected a wrong last sequence error")
    except APIError as e:
        assert e.err_code == 10071, e

    msg = await js.get_msg("PYSTREAM", 3)
    assert msg.data == b"m2" and msg.subject == "py.js.a", msg

    si = await js.stream_info("PYSTREAM")
    assert si.state.messages == 6 and si.state.last_seq == 6, si.state

    names = await js.streams_info()
    assert any(s.config.name == "PYSTREAM" for s in names)

    await js.delete_stream("PYSTREAM")
    try:
        await js.stream_info("PYSTREAM")
        raise AssertionError("stream should be gone")
    except nats.js.errors.NotFoundError:
        pass

    await nc.close()
    print("python jetstream scenario: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
