// Ordered consumers with nats.js (`js.consumers.get(stream)` with no name): consume(), fetch(),
// next(), filters, start policies, headers_only, a larger stream with refills, and a forced
// recreation (the client's reset path). By hand against nats-server:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/ordered.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Reader, at, drainFetch, dropStream, run, seqs } from "./lib.mjs";

const S = "JSORD";
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

run(
  "ordered",
  async (url) => {
    at("connect");
    const nc = await connect({ servers: url, name: "js-ordered" });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await dropStream(jsm, S);
    await dropStream(jsm, "JSORDBIG");
    await jsm.streams.add({ name: S, subjects: ["js.o.>"] });
    // seq 1-10 js.o.a, 11-15 js.o.b
    await Promise.all(range(0, 9).map((i) => js.publish("js.o.a", `a${i}`)));
    await Promise.all(range(0, 4).map((i) => js.publish("js.o.b", `b${i}`)));

    at("ordered consumer info");
    {
      await assert.rejects(js.consumers.get("JSNOSUCH"), /stream not found/);
      const oc = await js.consumers.get(S);
      const ci = await oc.info();
      assert.equal(ci.name, `${oc.opts.name_prefix}_${oc.serial}`);
      assert.equal(ci.config.ack_policy, "none");
      assert.equal(ci.config.mem_storage, true);
      assert.equal(ci.config.deliver_policy, "by_start_sequence");
      assert.equal(ci.config.opt_start_seq, 1);
      assert.equal(ci.config.durable_name, undefined);
      assert.equal(ci.num_pending, 15);
    }

    at("ordered consume()");
    {
      const oc = await js.consumers.get(S);
      const cm = await oc.consume({ max_messages: 4 });
      const r = new Reader(cm);
      const got = await r.take(15, 10000, "ordered consume of the stream");
      assert.deepEqual(seqs(got), range(1, 15));
      assert.deepEqual(got.map((m) => m.info.deliverySequence), range(1, 15));
      assert.deepEqual(got.map((m) => m.info.pending), range(0, 14).reverse());
      assert.equal(got[10].string(), "b0");
      // Messages published later arrive on the same consume.
      const acks = await Promise.all(["n1", "n2"].map((d) => js.publish("js.o.a", d)));
      const more = await r.take(2, 5000, "ordered consume continues");
      assert.deepEqual(seqs(more), acks.map((a) => a.seq));
      assert.deepEqual(more.map((m) => m.string()), ["n1", "n2"]);
      assert.equal(oc.serial, 1, "no recreation while nothing went wrong");
      // Live messages while consuming.
      const pa = await js.publish("js.o.b", "live");
      const [live] = await r.take(1, 5000, "a live message");
      assert.equal(live.seq, pa.seq);
      cm.stop();
      await r.ends(2000, "stopped");
    }

    at("ordered fetch() with a filter");
    {
      const oc = await js.consumers.get(S, { filter_subjects: ["js.o.b"] });
      let f = await drainFetch(await oc.fetch({ max_messages: 3, expires: 3000 }), false);
      assert.deepEqual(f.msgs.map((m) => m.string()), ["b0", "b1", "b2"]);
      assert.ok(f.msgs.every((m) => m.subject === "js.o.b"));
      f = await drainFetch(await oc.fetch({ max_messages: 10, expires: 1000 }), false);
      assert.deepEqual(f.msgs.map((m) => m.string()), ["b3", "b4", "live"]);
      assert.ok(f.ms >= 800, `a short ordered fetch waits for its expiry (${f.ms} ms)`);
      f = await drainFetch(await oc.fetch({ max_messages: 10, expires: 1000 }), false);
      assert.equal(f.msgs.length, 0, "nothing left");
      assert.equal(oc.serial, 1);
    }

    at("ordered next()");
    {
      const oc = await js.consumers.get(S);
      const a = await oc.next({ expires: 3000 });
      const b = await oc.next({ expires: 3000 });
      assert.deepEqual([a.seq, b.seq], [1, 2]);
      assert.equal(b.string(), "a1");
      assert.equal(oc.serial, 1);
    }

    at("ordered start policies");
    {
      const bySeq = await js.consumers.get(S, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: 10,
      });
      assert.equal((await bySeq.next({ expires: 3000 })).seq, 10);
      const last = await js.consumers.get(S, { deliver_policy: DeliverPolicy.Last });
      assert.equal((await last.next({ expires: 3000 })).string(), "live");
      const lps = await js.consumers.get(S, {
        deliver_policy: DeliverPolicy.LastPerSubject,
        filter_subjects: ["js.o.a", "js.o.b"],
      });
      const f = await drainFetch(await lps.fetch({ max_messages: 2, expires: 3000 }), false);
      assert.deepEqual(f.msgs.map((m) => m.string()).sort(), ["live", "n2"]);
    }

    at("ordered headers_only");
    {
      const oc = await js.consumers.get(S, { headers_only: true });
      const m = await oc.next({ expires: 3000 });
      assert.equal(m.seq, 1);
      assert.equal(m.data.length, 0);
      assert.equal(m.headers?.get("Nats-Msg-Size"), "2");
    }

    at("ordered consumer recreation");
    {
      // nats.js's own test: corrupt the client's cursor after the first message so the next
      // delivery looks out of order; the client must recreate the consumer where it left off.
      // The later messages are published only once the cursor is corrupted, so the check does
      // not depend on how fast the server delivers (a burst would pass the check beforehand).
      await js.publish("js.o.r", "r0");
      const oc = await js.consumers.get(S, { filter_subjects: ["js.o.r"] });
      let recreated = 0;
      const cm = await oc.consume({ max_messages: 5, idle_heartbeat: 1000 });
      (async () => {
        for await (const s of cm.status()) if (s.type === "ordered_consumer_recreated") recreated++;
      })().catch(() => {});
      const got = [];
      for await (const m of cm) {
        got.push(m.string());
        if (got.length === 1) {
          oc.orderedConsumerState.cursor.deliver_seq = 3;
          await Promise.all(["r1", "r2", "r3"].map((d) => js.publish("js.o.r", d)));
        }
        if (got.length === 4) break;
      }
      assert.deepEqual(got, ["r0", "r1", "r2", "r3"]);
      assert.equal(oc.serial, 2, "recreated once");
      assert.equal(recreated, 1);
    }

    at("ordered consume of a larger stream");
    {
      await jsm.streams.add({ name: "JSORDBIG", subjects: ["js.ob.>"] });
      const N = 2000;
      for (let i = 0; i < N; i += 500) {
        await Promise.all(range(i, i + 499).map((j) => js.publish(`js.ob.${j % 7}`, `${j}`)));
      }
      const oc = await js.consumers.get("JSORDBIG");
      const cm = await oc.consume({ max_messages: 100 });
      const got = [];
      for await (const m of cm) {
        got.push(m.seq);
        if (m.info.pending === 0) break;
      }
      assert.equal(got.length, N);
      assert.deepEqual(got, range(1, N));
      assert.equal(oc.serial, 1);
    }

    await jsm.streams.delete(S);
    await jsm.streams.delete("JSORDBIG");
    await nc.drain();
  },
  90_000,
);
