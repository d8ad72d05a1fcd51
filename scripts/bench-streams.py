#!/usr/bin/env python3
"""Creating many streams one by one (issue 16): the time to create COUNT streams sequentially
through one server, each create awaited, then one publish to the last one.

Usage: scripts/bench-streams.py URL [COUNT]   (nats-py: the repository's .venv has it)
Prints: streams, seconds, creates/s, the last create's latency in ms.
"""

import asyncio
import sys
import time

import nats


async def main(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream(timeout=30)
    start = time.perf_counter()
    last = 0.0
    for i in range(count):
        t = time.perf_counter()
        await js.add_stream(name=f"CREATE{i}", subjects=[f"create.{i}"])
        last = time.perf_counter() - t
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} streams, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    elapsed = time.perf_counter() - start
    ack = await js.publish(f"create.{count - 1}", b"x")
    assert ack.stream == f"CREATE{count - 1}", ack
    print(f"streams={count} seconds={elapsed:.1f} creates_per_s={count / elapsed:.0f} "
          f"last_create_ms={last * 1000:.1f}")
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000))
