// Stream management with nats.js (@nats-io/jetstream): add/info/update/list/names/find/delete,
// purge (whole, by subject, keep, up to a sequence), message get (API and direct) and delete,
// stream state counts. By hand against nats-server:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/streams.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { all, apiError, at, dropStream, run } from "./lib.mjs";

const S = "JSSTREAM";

run("streams", async (url) => {
  at("connect");
  const nc = await connect({ servers: url, name: "js-streams" });
  const jsm = await jetstreamManager(nc); // checks $JS.API.INFO
  const js = jetstream(nc);
  await dropStream(jsm, S);
  await dropStream(jsm, "JSOTHER");

  at("account info");
  const ai = await jsm.getAccountInfo();
  assert.equal(typeof ai.streams, "number", "account info streams");
  assert.equal(typeof ai.limits, "object", "account info limits");

  at("add");
  const si = await jsm.streams.add({ name: S, subjects: ["js.s.>"], allow_direct: true });
  assert.equal(si.config.name, S);
  assert.deepEqual(si.config.subjects, ["js.s.>"]);
  assert.equal(si.config.retention, "limits");
  assert.equal(si.config.storage, "file");
  assert.equal(si.config.num_replicas, 1);
  assert.equal(si.config.allow_direct, true);
  assert.equal(si.state.messages, 0);
  assert.equal(si.state.last_seq, 0);
  assert.ok(si.created, "created timestamp");
  // The same config again is fine; a different one is an error.
  const again = await jsm.streams.add({ name: S, subjects: ["js.s.>"], allow_direct: true });
  assert.equal(again.config.name, S);
  await assert.rejects(
    jsm.streams.add({ name: S, subjects: ["js.s.>"], max_msgs: 5, allow_direct: true }),
    apiError(10058, 400, /stream name already in use with a different configuration/),
  );
  await assert.rejects(
    jsm.streams.add({ name: "JSOTHER", subjects: ["js.s.a"] }),
    apiError(10065, 400, /subjects overlap with an existing stream/),
  );
  await assert.rejects(jsm.streams.info("JSNOSUCH"), (e) => {
    assert.ok(e?.name === "StreamNotFoundError", `StreamNotFoundError, got ${e}`);
    return apiError(10059, 404, /stream not found/)(e);
  });

  at("publish");
  // seq 1-4 js.s.a, 5-7 js.s.b, 8-10 js.s.c.d
  const subjects = ["js.s.a", "js.s.a", "js.s.a", "js.s.a", "js.s.b", "js.s.b", "js.s.b", "js.s.c.d", "js.s.c.d", "js.s.c.d"];
  const acks = await Promise.all(
    subjects.map((s, i) => {
      const h = headers();
      h.set("Idx", `${i + 1}`);
      return js.publish(s, `data-${i + 1}`, { headers: h });
    }),
  );
  assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.ok(acks.every((a) => a.stream === S && a.duplicate === false));

  at("info state");
  {
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 10);
    assert.equal(i.state.first_seq, 1);
    assert.equal(i.state.last_seq, 10);
    assert.equal(i.state.num_subjects, 3);
    assert.equal(i.state.consumer_count, 0);
    assert.ok(i.state.bytes > 0, "bytes");
    assert.ok(i.state.first_ts && i.state.last_ts, "first_ts/last_ts");
    const f = await jsm.streams.info(S, { subjects_filter: ">" });
    assert.deepEqual(f.state.subjects, { "js.s.a": 4, "js.s.b": 3, "js.s.c.d": 3 });
    const f2 = await jsm.streams.info(S, { subjects_filter: "js.s.c.*" });
    assert.deepEqual(f2.state.subjects, { "js.s.c.d": 3 });
    // The same through the Stream object.
    const st = await js.streams.get(S);
    assert.equal(st.name, S);
    assert.equal((await st.info()).state.messages, 10);
    assert.equal((await st.getMessage({ seq: 5 })).string(), "data-5");
  }

  at("update");
  {
    const u = await jsm.streams.update(S, {
      subjects: ["js.s.>", "js.s2.>"],
      description: "updated",
      max_msgs_per_subject: 10,
    });
    assert.deepEqual(u.config.subjects, ["js.s.>", "js.s2.>"]);
    assert.equal(u.config.description, "updated");
    assert.equal(u.config.max_msgs_per_subject, 10);
    assert.equal(u.state.messages, 10, "update keeps the messages");
    const i = await jsm.streams.info(S);
    assert.equal(i.config.description, "updated");
    const pa = await js.publish("js.s2.x", "eleven");
    assert.equal(pa.seq, 11);
    assert.equal(pa.stream, S);
    await assert.rejects(
      jsm.streams.update(S, { storage: "memory" }),
      apiError(10052, 500, /stream configuration update can not change storage type/),
    );
    await assert.rejects(jsm.streams.update("JSNOSUCH", { description: "x" }), apiError(10059, 404));
  }

  at("list / names / find");
  {
    await jsm.streams.add({ name: "JSOTHER", subjects: ["js.other.>"] });
    const list = await all(jsm.streams.list());
    const mine = list.find((s) => s.config.name === S);
    assert.ok(mine, `list has ${S}: ${list.map((s) => s.config.name)}`);
    assert.equal(mine.state.messages, 11);
    assert.ok(list.find((s) => s.config.name === "JSOTHER"));
    const names = await all(jsm.streams.names());
    assert.ok(names.includes(S) && names.includes("JSOTHER"), `names: ${names}`);
    const filtered = await all(jsm.streams.names("js.s.a"));
    assert.deepEqual(filtered, [S]);
    const byList = await all(jsm.streams.list("js.other.q"));
    assert.deepEqual(byList.map((s) => s.config.name), ["JSOTHER"]);
    assert.equal(await jsm.streams.find("js.s.c.d"), S);
    await assert.rejects(jsm.streams.find("js.none.here"));
  }

  at("get message");
  {
    const m = await jsm.streams.getMessage(S, { seq: 2 });
    assert.equal(m.seq, 2);
    assert.equal(m.subject, "js.s.a");
    assert.equal(m.string(), "data-2");
    assert.equal(m.header.get("Idx"), "2");
    assert.ok(m.time instanceof Date && !isNaN(m.time.getTime()), "time");
    const last = await jsm.streams.getMessage(S, { last_by_subj: "js.s.b" });
    assert.equal(last.seq, 7);
    assert.equal(last.string(), "data-7");
    const next = await jsm.streams.getMessage(S, { seq: 5, next_by_subj: "js.s.c.d" });
    assert.equal(next.seq, 8);
    assert.equal(await jsm.streams.getMessage(S, { seq: 99 }), null, "no message at 99");
    assert.equal(await jsm.streams.getMessage(S, { last_by_subj: "js.s.nothing" }), null);
  }

  at("direct get");
  {
    const d = await jsm.direct.getMessage(S, { seq: 3 });
    assert.equal(d.seq, 3);
    assert.equal(d.subject, "js.s.a");
    assert.equal(d.stream, S);
    assert.equal(d.string(), "data-3");
    assert.equal(d.header.get("Idx"), "3");
    const dl = await jsm.direct.getMessage(S, { last_by_subj: "js.s.c.d" });
    assert.equal(dl.seq, 10);
    assert.equal(dl.string(), "data-10");
    assert.equal(await jsm.direct.getMessage(S, { seq: 99 }), null, "direct: no message at 99");
  }

  at("delete message");
  {
    assert.equal(await jsm.streams.deleteMessage(S, 3), true);
    assert.equal(await jsm.streams.getMessage(S, { seq: 3 }), null);
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 10);
    assert.equal(i.state.num_deleted, 1);
    assert.equal(i.state.first_seq, 1);
    // An interior sequence already deleted, and (below) one below the first sequence: nats-server
    // gives two different errors.
    await assert.rejects(jsm.streams.deleteMessage(S, 3), apiError(10043, 400, /^sequence 3 not found$/));
    // Without erase.
    assert.equal(await jsm.streams.deleteMessage(S, 1, false), true);
    const i2 = await jsm.streams.info(S);
    assert.equal(i2.state.messages, 9);
    assert.equal(i2.state.first_seq, 2);
    await assert.rejects(jsm.streams.deleteMessage(S, 1), apiError(10057, 500, /^no message found$/));
  }

  at("purge by subject");
  {
    const p = await jsm.streams.purge(S, { filter: "js.s.b" });
    assert.equal(p.success, true);
    assert.equal(p.purged, 3);
    const i = await jsm.streams.info(S, { subjects_filter: ">" });
    assert.equal(i.state.messages, 6);
    assert.deepEqual(i.state.subjects, { "js.s.a": 2, "js.s.c.d": 3, "js.s2.x": 1 });
    assert.equal(i.state.last_seq, 11);
  }

  at("purge keep");
  {
    const p = await jsm.streams.purge(S, { filter: "js.s.c.d", keep: 1 });
    assert.equal(p.purged, 2);
    const m = await jsm.streams.getMessage(S, { last_by_subj: "js.s.c.d" });
    assert.equal(m.seq, 10);
    assert.equal(await jsm.streams.getMessage(S, { seq: 9 }), null);
  }

  at("purge up to a sequence");
  {
    // Left: 2, 4 (js.s.a), 10 (js.s.c.d), 11 (js.s2.x). Purge below 10.
    const p = await jsm.streams.purge(S, { seq: 10 });
    assert.equal(p.purged, 2);
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 2);
    assert.equal(i.state.first_seq, 10);
  }

  at("purge all");
  {
    const p = await jsm.streams.purge(S);
    assert.equal(p.success, true);
    assert.equal(p.purged, 2);
    const i = await jsm.streams.info(S);
    assert.equal(i.state.messages, 0);
    assert.equal(i.state.bytes, 0);
    assert.equal(i.state.first_seq, 12);
    assert.equal(i.state.last_seq, 11);
    const pa = await js.publish("js.s.a", "after purge");
    assert.equal(pa.seq, 12, "sequences continue after a purge");
  }

  at("delete");
  {
    assert.equal(await jsm.streams.delete(S), true);
    assert.equal(await jsm.streams.delete("JSOTHER"), true);
    await assert.rejects(jsm.streams.info(S), (e) => e?.name === "StreamNotFoundError");
    await assert.rejects(jsm.streams.delete(S), apiError(10059, 404, /stream not found/));
    const names = await all(jsm.streams.names());
    assert.ok(!names.includes(S), `deleted stream not listed: ${names}`);
    // Publishing to the subjects of a deleted stream: no stream answers.
    await assert.rejects(js.publish("js.s.a", "x", { timeout: 2000 }));
  }

  await nc.drain();
});
