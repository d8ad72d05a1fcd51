// KV with nats.js (@nats-io/kv): a bucket with history; put/get (also by revision)/create (the
// "exists" error)/update (revision)/delete/purge; history(); keys() (with a filter); watch()
// (initial values then updates, one key, updates only, all history); status; list/open/destroy.
// By hand against nats-server:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/kv.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm, KvWatchInclude } from "@nats-io/kv";
import { Reader, all, apiError, at, dropStream, run } from "./lib.mjs";

const B = "JSKV";

const show = (e) => `${e.key}@${e.revision}:${e.operation}:${e.operation === "PUT" ? e.string() : ""}`;

run(
  "kv",
  async (url) => {
    at("connect");
    const nc = await connect({ servers: url, name: "js-kv" });
    const jsm = await jetstreamManager(nc);
    const kvm = new Kvm(jetstream(nc));
    await dropStream(jsm, `KV_${B}`);

    at("create bucket");
    const kv = await kvm.create(B, { history: 5 });
    {
      const st = await kv.status();
      assert.equal(st.bucket, B);
      assert.equal(st.history, 5);
      assert.equal(st.values, 0);
      assert.equal(st.backingStore, "file");
      assert.equal(st.streamInfo.config.name, `KV_${B}`);
      assert.deepEqual(st.streamInfo.config.subjects, [`$KV.${B}.>`]);
      assert.equal(st.streamInfo.config.max_msgs_per_subject, 5);
      assert.equal(st.streamInfo.config.allow_rollup_hdrs, true);
      assert.equal(st.streamInfo.config.deny_delete, false);
      assert.equal(st.streamInfo.config.discard, "new");
      assert.equal(st.streamInfo.config.allow_direct, true);
    }

    at("put / get");
    {
      assert.equal(await kv.put("k1", "v1"), 1);
      assert.equal(await kv.put("k1", "v2"), 2);
      const e = await kv.get("k1");
      assert.equal(e.bucket, B);
      assert.equal(e.key, "k1");
      assert.equal(e.string(), "v2");
      assert.equal(e.revision, 2);
      assert.equal(e.operation, "PUT");
      assert.ok(e.created instanceof Date && !isNaN(e.created.getTime()), "created");
      const old = await kv.get("k1", { revision: 1 });
      assert.equal(old.string(), "v1");
      assert.equal(old.revision, 1);
      assert.equal(await kv.get("nope"), null, "a missing key is null");
      assert.equal(await kv.get("k1", { revision: 99 }), null, "a missing revision is null");
      await kv.put("json", JSON.stringify({ a: 1 }));
      assert.deepEqual((await kv.get("json")).json(), { a: 1 }); // rev 3
      assert.equal(await kv.put("dotted.key.name", "d"), 4);
      assert.equal((await kv.get("dotted.key.name")).string(), "d");
    }

    at("create");
    {
      await assert.rejects(kv.create("k1", "again"), apiError(10071, 400, /^wrong last sequence: 2$/));
      assert.equal(await kv.create("k2", "fresh"), 5);
    }

    at("update");
    {
      assert.equal(await kv.update("k1", "v3", 2), 6);
      await assert.rejects(kv.update("k1", "stale", 2), apiError(10071, 400, /^wrong last sequence: 6$/));
      await assert.rejects(kv.update("missing", "x", 1), apiError(10071, 400, /^wrong last sequence: 0$/));
      assert.equal((await kv.get("k1")).string(), "v3");
    }

    at("delete");
    {
      await kv.delete("k2");
      const e = await kv.get("k2");
      assert.equal(e.operation, "DEL", "get of a deleted key: the delete marker");
      assert.equal(e.revision, 7);
      assert.equal(e.length, 0);
      // create succeeds over a delete marker
      assert.equal(await kv.create("k2", "reborn"), 8);
      // delete with a previous revision
      await assert.rejects(kv.delete("k2", { previousSeq: 7 }), apiError(10071, 400, /^wrong last sequence: 8$/));
      await kv.delete("k2", { previousSeq: 8 }); // 9
    }

    at("history");
    {
      for (let i = 0; i < 7; i++) await kv.put("h", `h${i}`); // 10..16
      const h = await all(await kv.history({ key: "h" }));
      assert.deepEqual(h.map((e) => e.string()), ["h2", "h3", "h4", "h5", "h6"], "history keeps 5");
      assert.deepEqual(h.map((e) => e.revision), [12, 13, 14, 15, 16]);
      const k2 = await all(await kv.history({ key: "k2" }));
      assert.deepEqual(k2.map(show), ["k2@5:PUT:fresh", "k2@7:DEL:", "k2@8:PUT:reborn", "k2@9:DEL:"]);
      const none = await all(await kv.history({ key: "never" }));
      assert.equal(none.length, 0);
    }

    at("purge");
    {
      await kv.purge("h"); // 17
      const h = await all(await kv.history({ key: "h" }));
      assert.deepEqual(h.map(show), ["h@17:PURGE:"], "a purge leaves only its marker");
      assert.equal((await kv.get("h")).operation, "PURGE");
    }

    at("keys");
    {
      const keys = (await all(await kv.keys())).sort();
      assert.deepEqual(keys, ["dotted.key.name", "json", "k1"], "deleted and purged keys are not listed");
      const f = await all(await kv.keys("dotted.>"));
      assert.deepEqual(f, ["dotted.key.name"]);
      const f2 = await all(await kv.keys("k*"));
      assert.deepEqual(f2, []);
    }

    at("status");
    {
      const st = await kv.status();
      // k1: 1,2,6; json 3; dotted 4; k2: 5,7,8,9; h: 17 (purged 10-16)
      assert.equal(st.values, 10);
      assert.ok(st.size > 0, "size");
    }

    at("watch: initial values then updates");
    {
      const w = await kv.watch();
      const r = new Reader(w);
      const initial = await r.take(5, 5000, "initial values");
      assert.deepEqual(
        initial.map(show).sort(),
        ["dotted.key.name@4:PUT:d", "h@17:PURGE:", "json@3:PUT:{\"a\":1}", "k1@6:PUT:v3", "k2@9:DEL:"],
      );
      assert.ok(initial.slice(0, 4).every((e) => !e.isUpdate), "initial values are not updates");
      await r.none(300, "nothing more before an update");
      await kv.put("k1", "v4"); // 18
      await kv.delete("json"); // 19
      const upd = await r.take(2, 5000, "updates");
      assert.deepEqual(upd.map(show), ["k1@18:PUT:v4", "json@19:DEL:"]);
      assert.ok(upd.every((e) => e.isUpdate), "updates are updates");
      assert.equal(upd[1].delta, 0, "nothing pending after the last update");
      w.stop();
      await r.ends(3000, "stopped watch ends");
    }

    at("watch one key");
    {
      const w = await kv.watch({ key: "k1" });
      const r = new Reader(w);
      assert.deepEqual((await r.take(1, 5000, "k1 now")).map(show), ["k1@18:PUT:v4"]);
      await kv.put("other", "o"); // 20
      await kv.put("k1", "v5"); // 21
      assert.deepEqual((await r.take(1, 5000, "k1 update")).map(show), ["k1@21:PUT:v5"]);
      await r.none(300, "no other keys");
      w.stop();
    }

    at("watch updates only");
    {
      const w = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
      const r = new Reader(w);
      await r.none(300, "no initial values");
      await kv.put("u", "1"); // 22
      const [e] = await r.take(1, 5000, "an update");
      assert.equal(show(e), "u@22:PUT:1");
      assert.equal(e.isUpdate, true);
      w.stop();
    }

    at("watch with all history");
    {
      const w = await kv.watch({ key: "k2", include: KvWatchInclude.AllHistory });
      const r = new Reader(w);
      const h = await r.take(4, 5000, "k2 history");
      assert.deepEqual(h.map(show), ["k2@5:PUT:fresh", "k2@7:DEL:", "k2@8:PUT:reborn", "k2@9:DEL:"]);
      await kv.put("k2", "live"); // 23
      assert.deepEqual((await r.take(1, 5000, "k2 live")).map(show), ["k2@23:PUT:live"]);
      w.stop();
      const wa = await kv.watch({ include: KvWatchInclude.AllHistory });
      const ra = new Reader(wa);
      const everything = await ra.take(16, 5000, "all history of the bucket");
      const revs = everything.map((e) => e.revision);
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b), "in revision order");
      assert.equal(revs[revs.length - 1], 23);
      await ra.none(300, "no more");
      wa.stop();
    }

    at("watch many concurrent puts");
    {
      const w = await kv.watch({ key: "many.>", include: KvWatchInclude.UpdatesOnly });
      const r = new Reader(w);
      await Promise.all(Array.from({ length: 200 }, (_, i) => kv.put(`many.${i}`, `${i}`)));
      const got = await r.take(200, 10000, "200 updates");
      assert.equal(new Set(got.map((e) => e.key)).size, 200);
      w.stop();
      assert.equal((await all(await kv.keys("many.>"))).length, 200);
    }

    at("list / open / destroy");
    {
      const names = (await all(kvm.list())).map((s) => s.bucket);
      assert.ok(names.includes(B), `kvm.list(): ${names}`);
      const again = await kvm.open(B);
      assert.equal((await again.get("k1")).string(), "v5");
      assert.equal(await kv.destroy(), true);
      await assert.rejects(jsm.streams.info(`KV_${B}`), (e) => e?.name === "StreamNotFoundError");
    }

    await nc.drain();
  },
  90_000,
);
