// Core NATS with an unmodified nats.js client: pub/sub, wildcards, queue groups, request/reply,
// no responders, headers, flush, drain, max_payload. Written against nats-server and run
// unchanged against the agent (tests/js_clients.rs). By hand:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/core.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, headers, errors } from "@nats-io/transport-node";
import { Reader, at, isNoResponders, run, sleep, sync, until } from "./lib.mjs";

run("core", async (url) => {
  at("connect");
  const nc = await connect({ servers: url, name: "js-core" });
  const info = nc.info;
  assert.ok(info.server_id, "INFO has server_id");
  assert.equal(info.headers, true, "INFO headers");
  assert.equal(info.max_payload, 1024 * 1024, "INFO max_payload");
  assert.ok(info.proto >= 1, "INFO proto");

  at("pub/sub in order");
  {
    const sub = nc.subscribe("js.core.a");
    const r = new Reader(sub);
    for (let i = 0; i < 5; i++) nc.publish("js.core.a", `m${i}`);
    const got = await r.take(5, 5000, "plain subscription");
    assert.deepEqual(got.map((m) => m.string()), ["m0", "m1", "m2", "m3", "m4"]);
    assert.equal(got[0].subject, "js.core.a");
    assert.equal(got[0].reply, "");
    assert.equal(got[0].headers, undefined, "no headers on a plain PUB");
    assert.equal(sub.getReceived(), 5);
    sub.unsubscribe();
    nc.publish("js.core.a", "after");
    await sync(nc);
    await r.ends(2000, "unsubscribed subscription ends");
  }

  at("wildcards");
  {
    const star = new Reader(nc.subscribe("js.core.w.*"));
    const gt = new Reader(nc.subscribe("js.core.w.>"));
    const mid = new Reader(nc.subscribe("js.core.*.x"));
    nc.publish("js.core.w.one", "1");
    nc.publish("js.core.w.one.two", "2");
    nc.publish("js.core.w.x", "3");
    const s = await star.take(2, 5000, "js.core.w.*");
    assert.deepEqual(s.map((m) => m.subject), ["js.core.w.one", "js.core.w.x"]);
    const g = await gt.take(3, 5000, "js.core.w.>");
    assert.deepEqual(g.map((m) => m.subject), ["js.core.w.one", "js.core.w.one.two", "js.core.w.x"]);
    const m = await mid.take(1, 5000, "js.core.*.x");
    assert.equal(m[0].subject, "js.core.w.x");
    await sync(nc);
    await star.none(200, "js.core.w.* gets nothing more");
    await mid.none(100, "js.core.*.x gets nothing more");
  }

  at("queue groups");
  {
    const counts = [0, 0];
    const seen = new Set();
    let dup = false;
    const qs = [0, 1].map((i) =>
      nc.subscribe("js.core.q", {
        queue: "workers",
        callback: (err, m) => {
          assert.ifError(err);
          counts[i]++;
          if (seen.has(m.string())) dup = true;
          seen.add(m.string());
        },
      }),
    );
    let plain = 0;
    const ps = nc.subscribe("js.core.q", { callback: () => plain++ });
    for (let i = 0; i < 100; i++) nc.publish("js.core.q", `${i}`);
    await nc.flush();
    await until(() => counts[0] + counts[1], (n) => n >= 100, "queue members got 100 in all");
    await until(() => plain, (n) => n >= 100, "plain subscriber got all 100");
    await sync(nc);
    assert.equal(counts[0] + counts[1], 100, `each message to one member only: ${counts}`);
    assert.equal(dup, false, "no message delivered twice in the group");
    assert.equal(plain, 100);
    assert.ok(counts[0] > 0 && counts[1] > 0, `both members got some: ${counts}`);
    qs.forEach((s) => s.unsubscribe());
    ps.unsubscribe();
  }

  at("request/reply");
  {
    const svc = nc.subscribe("js.core.svc", {
      callback: (_err, m) => {
        const h = headers();
        h.set("Echo-Of", m.subject);
        m.respond(`re:${m.string()}`, { headers: h });
      },
    });
    await nc.flush();
    const r = await nc.request("js.core.svc", "hello", { timeout: 5000 });
    assert.equal(r.string(), "re:hello");
    assert.equal(r.headers?.get("Echo-Of"), "js.core.svc");
    // Many in flight at once on the shared reply subscription.
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => nc.request("js.core.svc", `${i}`, { timeout: 5000 })),
    );
    assert.deepEqual(replies.map((m) => m.string()), Array.from({ length: 50 }, (_, i) => `re:${i}`));
    // Without the shared mux: a dedicated inbox per request.
    const r2 = await nc.request("js.core.svc", "solo", { timeout: 5000, noMux: true });
    assert.equal(r2.string(), "re:solo");
    // A large request and reply.
    const big = randomBytes(512 * 1024);
    const echo = nc.subscribe("js.core.echo", { callback: (_e, m) => m.respond(m.data) });
    await nc.flush();
    const br = await nc.request("js.core.echo", big, { timeout: 5000 });
    assert.ok(Buffer.from(br.data).equals(big), "512 KiB echoed byte for byte");
    svc.unsubscribe();
    echo.unsubscribe();
  }

  at("no responders");
  {
    await assert.rejects(nc.request("js.core.nobody", "x", { timeout: 5000 }), (e) => {
      assert.ok(isNoResponders(e), `expected no responders, got ${e}`);
      return true;
    });
    await assert.rejects(
      nc.request("js.core.nobody", "x", { timeout: 5000, noMux: true }),
      (e) => isNoResponders(e),
    );
    // A subscriber that never answers: a timeout, not no responders.
    const silent = nc.subscribe("js.core.silent", { callback: () => {} });
    await nc.flush();
    await assert.rejects(nc.request("js.core.silent", "x", { timeout: 300 }), (e) => {
      assert.ok(!isNoResponders(e), `expected a timeout, got ${e}`);
      assert.ok(
        e instanceof errors.TimeoutError || e?.cause instanceof errors.TimeoutError,
        `timeout error: ${e}`,
      );
      return true;
    });
    silent.unsubscribe();
  }

  at("headers");
  {
    const r = new Reader(nc.subscribe("js.core.h"));
    const h = headers();
    h.set("X-One", "1");
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    h.set("Mixed-Case-Key", "Value With Spaces");
    nc.publish("js.core.h", "with headers", { headers: h });
    const h2 = headers();
    h2.set("Only", "headers");
    nc.publish("js.core.h", undefined, { headers: h2 });
    const [a, b] = await r.take(2, 5000, "header messages");
    assert.equal(a.string(), "with headers");
    assert.equal(a.headers.get("X-One"), "1");
    assert.deepEqual(a.headers.values("X-Multi"), ["a", "b"]);
    assert.equal(a.headers.get("Mixed-Case-Key"), "Value With Spaces");
    assert.equal(a.headers.hasError, false);
    assert.equal(b.data.length, 0, "header-only message has an empty payload");
    assert.equal(b.headers.get("Only"), "headers");
  }

  at("auto-unsubscribe after max");
  {
    const sub = nc.subscribe("js.core.max", { max: 3 });
    const r = new Reader(sub);
    for (let i = 0; i < 6; i++) nc.publish("js.core.max", `${i}`);
    const got = await r.take(3, 5000, "max 3");
    assert.deepEqual(got.map((m) => m.string()), ["0", "1", "2"]);
    await r.ends(2000, "subscription with max ends after 3");
  }

  at("flush");
  {
    const nc2 = await connect({ servers: url, name: "js-core-flush" });
    let n = 0;
    nc2.subscribe("js.core.f", { callback: () => n++ });
    await nc2.flush(); // the SUB is in place before anyone publishes
    for (let i = 0; i < 1000; i++) nc.publish("js.core.f", `${i}`);
    await nc.flush();
    await until(() => n, (v) => v === 1000, "1000 messages after flush");
    const rtt = await nc.rtt();
    assert.ok(rtt >= 0, "rtt");
    await nc2.close();
  }

  at("sub.drain()");
  {
    const got = [];
    const sub = nc.subscribe("js.core.sd", { callback: (_e, m) => got.push(m.string()) });
    await nc.flush();
    for (let i = 0; i < 200; i++) nc.publish("js.core.sd", `${i}`);
    await sub.drain();
    assert.equal(got.length, 200, `sub.drain() delivered ${got.length}/200 before closing`);
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `${i}`));
    assert.equal(sub.isClosed(), true);
    // After the drain the subject has no subscriber here.
    await assert.rejects(nc.request("js.core.sd", "", { timeout: 5000 }), (e) => isNoResponders(e));
  }

  at("nc.drain() on a subscriber connection");
  {
    const nc2 = await connect({ servers: url, name: "js-core-drain" });
    const got = [];
    nc2.subscribe("js.core.nd", {
      callback: async (_e, m) => {
        got.push(m.string());
      },
    });
    await nc2.flush();
    for (let i = 0; i < 500; i++) nc.publish("js.core.nd", `${i}`);
    await nc.flush(); // the server has routed all 500 to nc2
    const closed = nc2.closed();
    await nc2.drain();
    assert.equal(await closed, undefined, "closed without error");
    assert.equal(got.length, 500, `nc.drain() delivered ${got.length}/500 before closing`);
    assert.equal(nc2.isClosed(), true);
    assert.throws(() => nc2.publish("js.core.nd", "late"), errors.ClosedConnectionError);
  }

  at("nc.drain() with its own messages in flight");
  {
    const nc3 = await connect({ servers: url, name: "js-core-drain-self" });
    const got = [];
    nc3.subscribe("js.core.self", { callback: (_e, m) => got.push(m.string()) });
    for (let i = 0; i < 300; i++) nc3.publish("js.core.self", `${i}`);
    await nc3.drain();
    assert.equal(got.length, 300, `own messages delivered before closing: ${got.length}/300`);
  }

  at("max_payload");
  {
    const max = nc.info.max_payload;
    const r = new Reader(nc.subscribe("js.core.big"));
    const exact = randomBytes(max);
    nc.publish("js.core.big", exact);
    const [m] = await r.take(1, 10000, "max_payload message");
    assert.equal(m.data.length, max);
    assert.ok(Buffer.from(m.data).equals(exact), "max_payload bytes byte for byte");
    assert.throws(() => nc.publish("js.core.big", randomBytes(max + 1)), (e) => {
      assert.match(String(e.message), /max_payload/);
      return true;
    });
    // The connection is still usable.
    nc.publish("js.core.big", "small");
    const [s] = await r.take(1, 5000, "message after the refused one");
    assert.equal(s.string(), "small");
  }

  at("close");
  await sleep(10);
  await nc.drain();
});
