// The simplified JetStream consumer API of nats.js on durable and ephemeral pull consumers:
// next(), fetch() (max_messages, expires; an empty or short fetch ends on expiry), consume()
// (acks; stop/close, then a new consume on the same durable gets the next messages promptly),
// ack/nak (with delay)/term/working, ackAck, redelivery after ack_wait, max_ack_pending,
// deliver policies, consumer info num_pending/num_ack_pending, list/delete. By hand:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/consumers.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Reader, all, apiError, at, drainFetch, dropStream, run, seqs, sleep, sync, until } from "./lib.mjs";

const S = "JSCONS";

run(
  "consumers",
  async (url) => {
    at("connect");
    const nc = await connect({ servers: url, name: "js-consumers" });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await dropStream(jsm, S);
    await jsm.streams.add({ name: S, subjects: ["js.c.>"] });
    // seq 1-10 js.c.a ("a0".."a9"), 11-15 js.c.b ("b0".."b4")
    await Promise.all(Array.from({ length: 10 }, (_, i) => js.publish("js.c.a", `a${i}`)));
    await Promise.all(Array.from({ length: 5 }, (_, i) => js.publish("js.c.b", `b${i}`)));
    const info = (name) => jsm.consumers.info(S, name);

    at("durable consumer add/info");
    {
      const ci = await jsm.consumers.add(S, {
        durable_name: "DUR",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.a",
      });
      assert.equal(ci.name, "DUR");
      assert.equal(ci.stream_name, S);
      assert.equal(ci.config.durable_name, "DUR");
      assert.equal(ci.config.ack_policy, "explicit");
      assert.equal(ci.config.deliver_policy, "all");
      assert.equal(ci.config.filter_subject, "js.c.a");
      assert.equal(ci.config.ack_wait, 30 * 1e9, "default ack_wait 30s in ns");
      assert.equal(ci.num_pending, 10);
      assert.equal(ci.num_ack_pending, 0);
      assert.equal(ci.delivered.stream_seq, 0);
      // Adding the same durable again is idempotent.
      const again = await jsm.consumers.add(S, {
        durable_name: "DUR",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.a",
      });
      assert.equal(again.name, "DUR");
      const c = await js.consumers.get(S, "DUR");
      assert.equal((await c.info()).num_pending, 10);
      assert.equal((await jsm.streams.info(S)).state.consumer_count, 1);
    }
    const dur = await js.consumers.get(S, "DUR");

    at("next()");
    {
      const m = await dur.next({ expires: 5000 });
      assert.ok(m, "next() got a message");
      assert.equal(m.seq, 1);
      assert.equal(m.subject, "js.c.a");
      assert.equal(m.string(), "a0");
      assert.equal(m.info.stream, S);
      assert.equal(m.info.consumer, "DUR");
      assert.equal(m.info.streamSequence, 1);
      assert.equal(m.info.deliverySequence, 1);
      assert.equal(m.info.deliveryCount, 1);
      assert.equal(m.info.pending, 9);
      assert.equal(m.redelivered, false);
      assert.ok(m.info.timestampNanos > 0, "timestamp");
      let ci = await info("DUR");
      assert.equal(ci.num_ack_pending, 1);
      assert.equal(ci.num_pending, 9);
      assert.equal(await m.ackAck(), true, "ackAck confirmed");
      ci = await info("DUR");
      assert.equal(ci.num_ack_pending, 0);
      assert.equal(ci.ack_floor.stream_seq, 1);
      assert.equal(ci.delivered.stream_seq, 1);
      assert.equal(ci.delivered.consumer_seq, 1);
    }

    at("fetch() with max_messages");
    {
      const { msgs, ms } = await drainFetch(await dur.fetch({ max_messages: 3, expires: 5000 }));
      assert.deepEqual(seqs(msgs), [2, 3, 4]);
      assert.deepEqual(msgs.map((m) => m.info.pending), [8, 7, 6]);
      assert.ok(ms < 2500, `a full fetch ends when it has max_messages, not at expiry (${ms} ms)`);
      await sync(nc);
      await until(() => info("DUR"), (ci) => ci.num_ack_pending === 0, "fetched messages acked");
      assert.equal((await info("DUR")).num_pending, 6);
    }

    at("consume(), stop, a new consume on the same durable");
    {
      // seq 5-10 are pending: the first consume reads and acks whatever it gets, then stops.
      const cm = await dur.consume({ max_messages: 100, expires: 5000 });
      const r = new Reader(cm);
      const first = await r.take(6, 5000, "first consume");
      assert.deepEqual(seqs(first), [5, 6, 7, 8, 9, 10]);
      for (const m of first) m.ack();
      await r.none(300, "nothing more in the first consume");
      cm.stop();
      await r.ends(2000, "a stopped consume ends its iterator");
      assert.equal(await cm.closed(), undefined, "closed() without an error");
      await sync(nc);
      await until(() => info("DUR"), (ci) => ci.num_ack_pending === 0 && ci.num_pending === 0, "all acked");

      // New messages after the stop: a new consume gets them promptly (the old consume's pull
      // request, still open at the server, must not swallow them).
      const acks = await Promise.all([0, 1, 2].map((i) => js.publish("js.c.a", `late${i}`)));
      assert.deepEqual(acks.map((a) => a.seq), [16, 17, 18]);
      const t0 = Date.now();
      const cm2 = await dur.consume({ max_messages: 10, expires: 5000 });
      const r2 = new Reader(cm2);
      const second = await r2.take(3, 4000, "second consume gets the next messages promptly");
      assert.deepEqual(seqs(second), [16, 17, 18]);
      assert.ok(second.every((m) => m.info.deliveryCount === 1), "first deliveries, not redeliveries");
      const took = Date.now() - t0;
      assert.ok(took < 3500, `second consume took ${took} ms (ack_wait is 30 s, expires 5 s)`);
      for (const m of second) m.ack();
      // Messages published while the consume runs arrive too.
      const pa = await js.publish("js.c.a", "live");
      const [live] = await r2.take(1, 3000, "a message published during consume");
      assert.equal(live.seq, pa.seq);
      live.ack();
      // close() resolves once the iterator has been read to its end.
      const closing = cm2.close();
      await r2.ends(2000, "a closed consume ends its iterator");
      assert.equal(await closing, undefined, "close() without an error");
      await sync(nc);
      const ci = await until(() => info("DUR"), (ci) => ci.num_ack_pending === 0, "all acked");
      assert.equal(ci.num_pending, 0);
      assert.equal(ci.ack_floor.stream_seq, 19);
    }

    at("an empty fetch ends on expiry");
    {
      const { msgs, ms } = await drainFetch(await dur.fetch({ max_messages: 10, expires: 1000 }));
      assert.equal(msgs.length, 0);
      assert.ok(ms >= 800 && ms < 4000, `empty fetch ended after ${ms} ms (expires 1000)`);
    }

    at("next() with nothing pending returns null on expiry");
    {
      const t0 = Date.now();
      const m = await dur.next({ expires: 1000 });
      const ms = Date.now() - t0;
      assert.equal(m, null);
      assert.ok(ms >= 800 && ms < 4000, `next() gave up after ${ms} ms`);
    }

    at("a short fetch gets what there is and ends on expiry");
    {
      await js.publish("js.c.a", "s1");
      await js.publish("js.c.a", "s2");
      const { msgs, ms } = await drainFetch(await dur.fetch({ max_messages: 10, expires: 1000 }));
      assert.deepEqual(msgs.map((m) => m.string()), ["s1", "s2"]);
      assert.ok(ms >= 800 && ms < 4000, `short fetch ended after ${ms} ms`);
    }

    at("a fetch waiting at the server gets a message published later");
    {
      const it = await dur.fetch({ max_messages: 1, expires: 4000 });
      const p = drainFetch(it);
      await sleep(300);
      await js.publish("js.c.a", "later");
      const { msgs, ms } = await p;
      assert.deepEqual(msgs.map((m) => m.string()), ["later"]);
      assert.ok(ms < 3000, `waiting fetch answered after ${ms} ms`);
    }

    at("ack/nak/term/working");
    {
      await jsm.consumers.add(S, {
        durable_name: "ACKS",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.b",
        ack_wait: 2 * 1e9,
      });
      const c = await js.consumers.get(S, "ACKS");
      // nak: redelivered at once, counted.
      let m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 11);
      m.nak();
      // A nak is fire and forget, and nats-server applies acks apart from pull requests: give it
      // a moment before the next pull.
      await sync(nc);
      await sleep(200);
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 11, "a nak'd message comes back first");
      assert.equal(m.info.deliveryCount, 2);
      assert.equal(m.redelivered, true);
      m.ack();
      // nak with a delay: the next message comes first, the nak'd one after the delay.
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 12);
      const t0 = Date.now();
      m.nak(700);
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 13, "a delayed nak lets the next message through");
      m.ack();
      await sleep(Math.max(0, 900 - (Date.now() - t0)));
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 12, "the nak'd message after its delay");
      assert.equal(m.info.deliveryCount, 2);
      m.ack();
      // term: never redelivered.
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 14);
      m.term("bad message");
      // working: keeps a message past its ack_wait without a redelivery.
      m = await c.next({ expires: 3000 });
      assert.equal(m.seq, 15);
      // 3.2 s in all, well past the 2 s ack_wait.
      for (let i = 0; i < 8; i++) {
        await sleep(400);
        m.working();
      }
      await sync(nc);
      let ci = await info("ACKS");
      assert.equal(ci.num_ack_pending, 1, "the one being worked on");
      assert.equal(ci.num_redelivered, 0, "nothing waits for redelivery");
      assert.equal(await c.next({ expires: 1000 }), null, "neither the termed nor the worked-on message comes back");
      assert.equal(await m.ackAck(), true);
      ci = await info("ACKS");
      assert.equal(ci.num_ack_pending, 0);
      assert.equal(ci.num_pending, 0);
      assert.equal(ci.ack_floor.stream_seq, 15);
    }

    at("redelivery after ack_wait");
    {
      await jsm.consumers.add(S, {
        durable_name: "REDELIVER",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.b",
        ack_wait: 1 * 1e9,
      });
      const c = await js.consumers.get(S, "REDELIVER");
      const cm = await c.consume({ max_messages: 2 });
      const r = new Reader(cm);
      const firsts = await r.take(2, 3000, "first deliveries");
      assert.deepEqual(seqs(firsts), [11, 12]);
      cm.stop(); // without acking
      await r.rest(2000, "stopped"); // already delivered ones, left unacked too
      const cm2 = await c.consume({ max_messages: 10 });
      const r2 = new Reader(cm2);
      const bySeq = {};
      const deadline = Date.now() + 8000;
      while (Object.keys(bySeq).length < 5) {
        const m = await r2.next(Math.max(1, deadline - Date.now()), `redeliveries: ${JSON.stringify(bySeq)}`);
        m.ack();
        bySeq[m.seq] = Math.max(bySeq[m.seq] ?? 0, m.info.deliveryCount);
      }
      assert.deepEqual(Object.keys(bySeq).map(Number).sort((a, b) => a - b), [11, 12, 13, 14, 15]);
      // 11, 12 were delivered to the stopped consume and are redelivered after ack_wait; 13-15
      // may have been too, if that consume had pulled them already.
      assert.ok(bySeq[11] >= 2 && bySeq[12] >= 2, `11 and 12 redelivered: ${JSON.stringify(bySeq)}`);
      cm2.stop();
      await r2.rest(2000, "stopped");
      await sync(nc);
      await until(() => info("REDELIVER"), (ci) => ci.num_ack_pending === 0, "redeliveries acked");
    }

    at("max_ack_pending");
    {
      await jsm.consumers.add(S, {
        durable_name: "MAXACK",
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.a",
        max_ack_pending: 2,
      });
      const c = await js.consumers.get(S, "MAXACK");
      const { msgs } = await drainFetch(await c.fetch({ max_messages: 5, expires: 1000 }), false);
      assert.deepEqual(seqs(msgs), [1, 2], "no more than max_ack_pending outstanding");
      const ci = await info("MAXACK");
      assert.equal(ci.num_ack_pending, 2);
      msgs.forEach((m) => m.ack());
      await sync(nc);
      const { msgs: more } = await drainFetch(await c.fetch({ max_messages: 2, expires: 2000 }));
      assert.deepEqual(seqs(more), [3, 4], "after acks, the next ones");
    }

    at("ephemeral consumers");
    {
      const ci = await jsm.consumers.add(S, {
        ack_policy: AckPolicy.Explicit,
        filter_subject: "js.c.b",
        inactive_threshold: 30 * 1e9,
      });
      assert.ok(ci.name && ci.name.length > 0, "the server names an ephemeral consumer");
      assert.equal(ci.config.durable_name, undefined);
      assert.equal(ci.num_pending, 5);
      const c = await js.consumers.get(S, ci.name);
      const { msgs } = await drainFetch(await c.fetch({ max_messages: 5, expires: 3000 }));
      assert.deepEqual(msgs.map((m) => m.string()), ["b0", "b1", "b2", "b3", "b4"]);
      assert.equal(msgs[0].info.consumer, ci.name);
      // A named ephemeral (no durable_name), with ack none.
      const named = await jsm.consumers.add(S, {
        name: "EPHNAMED",
        ack_policy: AckPolicy.None,
        filter_subjects: ["js.c.b"],
        inactive_threshold: 30 * 1e9,
      });
      assert.equal(named.name, "EPHNAMED");
      const c2 = await js.consumers.get(S, "EPHNAMED");
      const m = await c2.next({ expires: 3000 });
      assert.equal(m.string(), "b0");
      const after = await c2.info();
      assert.equal(after.num_ack_pending, 0, "ack none");
      assert.equal(after.num_pending, 4);
      assert.equal(await c.delete(), true);
      await assert.rejects(jsm.consumers.info(S, ci.name), (e) => {
        assert.equal(e?.name, "ConsumerNotFoundError");
        return apiError(10014, 404, /^consumer not found$/)(e);
      });
      await jsm.consumers.delete(S, "EPHNAMED");
    }

    at("deliver policies");
    {
      const mk = async (name, cfg) => {
        await jsm.consumers.add(S, { durable_name: name, ack_policy: AckPolicy.Explicit, ...cfg });
        return js.consumers.get(S, name);
      };
      const last = await mk("LAST", { deliver_policy: DeliverPolicy.Last, filter_subject: "js.c.b" });
      assert.equal((await last.next({ expires: 3000 })).string(), "b4");
      const start = await mk("START", { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 13 });
      assert.equal((await start.next({ expires: 3000 })).seq, 13);
      const lps = await mk("LPS", { deliver_policy: DeliverPolicy.LastPerSubject, filter_subject: "js.c.>" });
      const { msgs } = await drainFetch(await lps.fetch({ max_messages: 2, expires: 3000 }));
      const lastA = (await jsm.streams.getMessage(S, { last_by_subj: "js.c.a" })).seq;
      assert.deepEqual(seqs(msgs), [15, lastA].sort((a, b) => a - b));
      const neu = await mk("NEW", { deliver_policy: DeliverPolicy.New });
      assert.equal((await neu.info()).num_pending, 0);
      const p = neu.next({ expires: 4000 });
      await sleep(200);
      const pa = await js.publish("js.c.b", "new one");
      assert.equal((await p)?.seq, pa.seq, "deliver new gets only later messages");
    }

    at("list / delete");
    {
      const names = (await all(jsm.consumers.list(S))).map((c) => c.name).sort();
      assert.deepEqual(names, ["ACKS", "DUR", "LAST", "LPS", "MAXACK", "NEW", "REDELIVER", "START"]);
      assert.equal((await jsm.streams.info(S)).state.consumer_count, 8);
      assert.equal(await jsm.consumers.delete(S, "DUR"), true);
      await assert.rejects(jsm.consumers.delete(S, "DUR"), apiError(10014, 404, /^consumer not found$/));
      await assert.rejects(js.consumers.get(S, "DUR"), (e) => e?.name === "ConsumerNotFoundError");
    }

    await jsm.streams.delete(S);
    await nc.drain();
  },
  90_000,
);
