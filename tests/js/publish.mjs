// JetStream publish with expectations, with nats.js: PubAck fields, msgID dedupe (the duplicate
// flag, also for concurrent copies), expect { streamName, lastSequence, lastSubjectSequence,
// lastSubjectSequenceSubject, lastMsgID } right and wrong (error codes and texts as nats-server
// gives them), ordering of concurrent publishes, stream limits. By hand against nats-server:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/publish.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { apiError, at, dropStream, run } from "./lib.mjs";

const S = "JSPUB";

run("publish", async (url) => {
  at("connect");
  const nc = await connect({ servers: url, name: "js-publish" });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  for (const s of [S, "JSPUBLIM", "JSPUBOLD"]) await dropStream(jsm, s);
  const si = await jsm.streams.add({ name: S, subjects: ["js.p.>"] });
  assert.equal(si.config.duplicate_window, 120 * 1e9, "default duplicate window 2m in ns");

  at("plain publish");
  {
    const pa = await js.publish("js.p.a", "one");
    assert.deepEqual({ ...pa }, { stream: S, seq: 1, duplicate: false });
  }

  at("msgID dedupe");
  {
    const a = await js.publish("js.p.a", "two", { msgID: "id-2" });
    assert.equal(a.seq, 2);
    assert.equal(a.duplicate, false);
    const again = await js.publish("js.p.a", "two again", { msgID: "id-2" });
    assert.equal(again.seq, 2, "a duplicate is acked with the original sequence");
    assert.equal(again.duplicate, true);
    assert.equal(again.stream, S);
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 2, "the duplicate is not stored");
    const m = await jsm.streams.getMessage(S, { seq: 2 });
    assert.equal(m.string(), "two");
    assert.equal(m.header.get("Nats-Msg-Id"), "id-2");
    // Another subject, same id: still a duplicate (the window is per stream).
    const other = await js.publish("js.p.b", "x", { msgID: "id-2" });
    assert.equal(other.duplicate, true);
    assert.equal(other.seq, 2);
  }

  at("concurrent copies of one msgID");
  {
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => js.publish("js.p.c", `copy ${i}`, { msgID: "id-c" })),
    );
    const fresh = acks.filter((a) => !a.duplicate);
    assert.equal(fresh.length, 1, `exactly one copy stored: ${JSON.stringify(acks)}`);
    assert.equal(fresh[0].seq, 3);
    assert.ok(acks[0].duplicate === false, "the first one sent is the one stored");
    assert.ok(acks.every((a) => a.seq === 3), `all acked with seq 3: ${acks.map((a) => a.seq)}`);
    assert.equal((await jsm.streams.getMessage(S, { seq: 3 })).string(), "copy 0");
    assert.equal((await jsm.streams.info(S)).state.last_seq, 3);
  }

  at("expect streamName");
  {
    await assert.rejects(
      js.publish("js.p.a", "x", { expect: { streamName: "WRONG" } }),
      apiError(10060, 400, /^expected stream does not match$/),
    );
    const pa = await js.publish("js.p.a", "named", { expect: { streamName: S } });
    assert.equal(pa.seq, 4);
  }

  at("expect lastSequence");
  {
    await assert.rejects(
      js.publish("js.p.a", "x", { expect: { lastSequence: 3 } }),
      apiError(10071, 400, /^wrong last sequence: 4$/),
    );
    const pa = await js.publish("js.p.a", "after 4", { expect: { lastSequence: 4 } });
    assert.equal(pa.seq, 5);
  }

  at("expect lastSubjectSequence");
  {
    // js.p.b has nothing stored (its publish above was a duplicate): 0 is right.
    const b = await js.publish("js.p.b", "b1", { expect: { lastSubjectSequence: 0 } });
    assert.equal(b.seq, 6);
    await js.publish("js.p.a", "a again"); // 7
    await assert.rejects(
      js.publish("js.p.b", "x", { expect: { lastSubjectSequence: 7 } }),
      apiError(10071, 400, /^wrong last sequence: 6$/),
    );
    await assert.rejects(
      js.publish("js.p.new", "x", { expect: { lastSubjectSequence: 1 } }),
      apiError(10071, 400, /^wrong last sequence: 0$/),
    );
    const ok = await js.publish("js.p.b", "b2", { expect: { lastSubjectSequence: 6 } });
    assert.equal(ok.seq, 8);
  }

  at("expect lastSubjectSequence with lastSubjectSequenceSubject");
  {
    // Last of js.p.* is 8 (js.p.b); publish to another subject conditioned on it.
    await assert.rejects(
      js.publish("js.p.z", "x", {
        expect: { lastSubjectSequence: 7, lastSubjectSequenceSubject: "js.p.*" },
      }),
      apiError(10071, 400, /^wrong last sequence: 8$/),
    );
    const pa = await js.publish("js.p.z", "z", {
      expect: { lastSubjectSequence: 8, lastSubjectSequenceSubject: "js.p.*" },
    });
    assert.equal(pa.seq, 9);
  }

  at("expect lastMsgID");
  {
    const a = await js.publish("js.p.a", "m", { msgID: "m-1" }); // 10
    assert.equal(a.seq, 10);
    await assert.rejects(
      js.publish("js.p.a", "x", { msgID: "m-2", expect: { lastMsgID: "nope" } }),
      apiError(10070, 400, /^wrong last msg ID: m-1$/),
    );
    const ok = await js.publish("js.p.a", "m2", { msgID: "m-2", expect: { lastMsgID: "m-1" } });
    assert.equal(ok.seq, 11);
    // A message without an id resets the last id to empty.
    await js.publish("js.p.a", "no id"); // 12
    await assert.rejects(
      js.publish("js.p.a", "x", { expect: { lastMsgID: "m-2" } }),
      apiError(10070, 400, /^wrong last msg ID: $/),
    );
  }

  at("all expectations together");
  {
    const pa = await js.publish("js.p.all", "all", {
      msgID: "all-1",
      expect: { streamName: S, lastSequence: 12, lastSubjectSequence: 0, lastMsgID: "" },
    });
    assert.equal(pa.seq, 13);
    // A retry of that conditional publish: nats-server checks the expectations before the
    // duplicate window, so the retry is refused for the now wrong last sequence...
    await assert.rejects(
      js.publish("js.p.all", "all", { msgID: "all-1", expect: { lastSequence: 12 } }),
      apiError(10071, 400, /^wrong last sequence: 13$/),
    );
    // ...and one without expectations is acked as a duplicate.
    const retry = await js.publish("js.p.all", "all", { msgID: "all-1" });
    assert.equal(retry.duplicate, true);
    assert.equal(retry.seq, 13);
  }

  at("the stream is unchanged by refused publishes");
  {
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 13);
    assert.equal(i.state.last_seq, 13);
  }

  at("ordering of concurrent publishes");
  {
    const acks = await Promise.all(
      Array.from({ length: 300 }, (_, i) => js.publish(`js.p.o.${i % 3}`, `${i}`)),
    );
    assert.deepEqual(
      acks.map((a) => a.seq),
      Array.from({ length: 300 }, (_, i) => 14 + i),
      "one connection's publishes are stored in the order sent",
    );
    const m = await jsm.streams.getMessage(S, { seq: 14 + 299 });
    assert.equal(m.string(), "299");
    assert.equal(m.subject, "js.p.o.2");
  }

  at("large message with headers");
  {
    const big = randomBytes(900 * 1024);
    const h = headers();
    h.set("Kind", "big");
    const pa = await js.publish("js.p.big", big, { headers: h });
    const m = await jsm.streams.getMessage(S, { seq: pa.seq });
    assert.ok(Buffer.from(m.data).equals(big), "900 KiB stored byte for byte");
    assert.equal(m.header.get("Kind"), "big");
  }

  at("no stream for the subject");
  await assert.rejects(js.publish("js.nostream.here", "x", { timeout: 3000 }), (e) => {
    assert.match(`${e?.message} ${e?.cause?.message ?? ""}`, /no responders/i);
    return true;
  });

  at("limits: discard new");
  {
    await jsm.streams.add({ name: "JSPUBLIM", subjects: ["js.lim.>"], max_msgs: 3, discard: "new" });
    for (let i = 1; i <= 3; i++) assert.equal((await js.publish("js.lim.a", `${i}`)).seq, i);
    await assert.rejects(
      js.publish("js.lim.a", "4"),
      apiError(10077, 503, /^maximum messages exceeded$/),
    );
    assert.equal((await jsm.streams.info("JSPUBLIM")).state.messages, 3);
  }

  at("limits: discard old");
  {
    await jsm.streams.add({
      name: "JSPUBOLD",
      subjects: ["js.old.>"],
      max_msgs: 3,
      max_msgs_per_subject: 2,
    });
    for (let i = 1; i <= 5; i++) await js.publish("js.old.a", `${i}`);
    let i = await jsm.streams.info("JSPUBOLD");
    assert.equal(i.state.messages, 2, "max_msgs_per_subject 2");
    assert.equal(i.state.first_seq, 4);
    await js.publish("js.old.b", "b1");
    await js.publish("js.old.c", "c1");
    i = await jsm.streams.info("JSPUBOLD");
    assert.equal(i.state.messages, 3, "max_msgs 3");
    assert.equal(i.state.first_seq, 5);
    assert.equal(i.state.last_seq, 7);
  }

  for (const s of [S, "JSPUBLIM", "JSPUBOLD"]) await jsm.streams.delete(s);
  await nc.drain();
});
