// Core NATS across three servers with an unmodified nats.js client: wildcards in order with
// headers, a queue group spread over two servers (each message once), request/reply with a
// service on another server, no responders only when nobody anywhere listens. The one argument
// is the three servers' URLs, comma-separated. Written against a nats-server 2.15 cluster and run
// unchanged against three agents (tests/routes.rs). By hand, with three clustered servers:
//   node tests/js/routes.mjs nats://127.0.0.1:4333,nats://127.0.0.1:4334,nats://127.0.0.1:4335
import assert from "node:assert/strict";
import { connect, headers } from "@nats-io/transport-node";
import { Reader, at, isNoResponders, run } from "./lib.mjs";

/** Waits until what `subscriber` subscribed so far is known where `publisher` is: a fresh
 * subscription, announced behind the earlier ones, is probed from `publisher` until one arrives. */
async function barrier(subscriber, publisher) {
  const subject = `barrier.${Math.random().toString(36).slice(2)}`;
  const probe = new Reader(subscriber.subscribe(subject));
  await subscriber.flush();
  const deadline = Date.now() + 10_000;
  for (;;) {
    publisher.publish(subject);
    await publisher.flush();
    try {
      await probe.next(20, "probe");
      return;
    } catch (e) {
      if (!String(e.message).includes("not done within")) throw e;
      assert.ok(Date.now() < deadline, "interest never crossed");
    }
  }
}

run("routes", async (arg) => {
  const [a, b, c] = await Promise.all(
    arg.split(",").map((servers, i) => connect({ servers, name: `js-routes-${i}` })),
  );

  at("wildcards in order with headers");
  {
    const star = new Reader(b.subscribe("js.r.*.x"));
    const full = new Reader(c.subscribe("js.r.>"));
    await barrier(b, a);
    await barrier(c, a);
    for (let i = 0; i < 100; i++) {
      const h = headers();
      h.set("Seq", String(i));
      a.publish("js.r.o.x", String(i), { headers: h });
    }
    a.publish("js.r.o.y", "y");
    const s = await star.take(100, 10_000, "js.r.*.x");
    assert.deepEqual(
      s.map((m) => m.string()),
      [...Array(100).keys()].map(String),
    );
    assert.equal(s[7].headers.get("Seq"), "7");
    const f = await full.take(101, 10_000, "js.r.>");
    assert.equal(f[100].subject, "js.r.o.y");
  }

  at("a queue group spread over two servers gets each message once");
  {
    const n = 200;
    const got = new Map();
    const seen = new Set();
    let twice = 0;
    let resolve;
    const all = new Promise((r) => (resolve = r));
    for (const [server, nc] of [["b", b], ["c", c]]) {
      for (let k = 0; k < 2; k++) {
        nc.subscribe("js.r.work", {
          queue: "workers",
          callback: (err, m) => {
            assert.ifError(err);
            if (seen.has(m.string())) twice++;
            seen.add(m.string());
            got.set(server, (got.get(server) ?? 0) + 1);
            if (seen.size === n) resolve();
          },
        });
      }
    }
    await barrier(b, a);
    await barrier(c, a);
    for (let i = 0; i < n; i++) a.publish("js.r.work", String(i));
    await a.flush();
    await all;
    // A probe behind the messages on each member's server: nothing more is on its way.
    await barrier(b, a);
    await barrier(c, a);
    assert.equal(twice, 0, "delivered twice");
    assert.equal(seen.size, n);
    assert.ok(got.get("b") > 0 && got.get("c") > 0, `spread over both: ${[...got]}`);
  }

  at("request/reply with the service on another server");
  {
    const svc = c.subscribe("js.svc.r", {
      callback: (err, m) => {
        assert.ifError(err);
        m.respond(`re:${m.string()}`);
      },
    });
    await barrier(c, a);
    for (let i = 0; i < 50; i++) {
      const r = await a.request("js.svc.r", String(i), { timeout: 10_000 });
      assert.equal(r.string(), `re:${i}`);
    }
    svc.unsubscribe();
    await c.flush();
    // Once the service's leaving is known here, requests get no responders.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await a.request("js.svc.r", "", { timeout: 1000 });
      } catch (e) {
        if (isNoResponders(e)) break;
      }
      assert.ok(Date.now() < deadline, "the service's interest was never withdrawn");
    }
  }

  at("no responders only when nobody anywhere listens");
  {
    await assert.rejects(a.request("js.nobody.r", "", { timeout: 10_000 }), (e) =>
      isNoResponders(e),
    );
  }

  await Promise.all([a, b, c].map((nc) => nc.close()));
});
