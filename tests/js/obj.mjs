// The object store with nats.js (@nats-io/obj): a 3 MiB object of random bytes put and read back
// byte for byte (blob and stream APIs, digest checked), a streamed put with a small chunk size,
// an empty object, info, list, replace, delete, status, destroy. By hand against nats-server:
//   nats-server -js -sd /tmp/ns -p 4333 -a 127.0.0.1 & node tests/js/obj.mjs nats://127.0.0.1:4333
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { at, dropStream, run } from "./lib.mjs";

const B = "JSOBJ";
const MiB = 1024 * 1024;

const digestOf = (buf) => `SHA-256=${createHash("sha256").update(buf).digest("base64url")}=`;

function streamOf(buf, piece) {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= buf.length) return c.close();
      c.enqueue(buf.subarray(off, off + piece));
      off += piece;
    },
  });
}

async function readAll(rs) {
  const parts = [];
  const reader = rs.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(Buffer.from(value));
  }
  return Buffer.concat(parts);
}

run(
  "obj",
  async (url) => {
    at("connect");
    const nc = await connect({ servers: url, name: "js-obj" });
    const jsm = await jetstreamManager(nc);
    const objm = new Objm(jetstream(nc));
    await dropStream(jsm, `OBJ_${B}`);

    at("create bucket");
    const os = await objm.create(B, { description: "js scenario" });
    {
      const st = await os.status();
      assert.equal(st.bucket, B);
      assert.equal(st.description, "js scenario");
      assert.equal(st.sealed, false);
      assert.equal(st.size, 0);
      assert.equal(st.streamInfo.config.name, `OBJ_${B}`);
      assert.deepEqual(st.streamInfo.config.subjects.sort(), [`$O.${B}.C.>`, `$O.${B}.M.>`]);
      assert.equal(st.streamInfo.config.allow_rollup_hdrs, true);
    }

    at("put a 3 MiB blob");
    const big = randomBytes(3 * MiB);
    {
      const t0 = Date.now();
      const info = await os.putBlob({ name: "big.bin", description: "random" }, big);
      assert.equal(info.name, "big.bin");
      assert.equal(info.bucket, B);
      assert.equal(info.size, 3 * MiB);
      assert.equal(info.chunks, 24, "128 KiB chunks");
      assert.equal(info.digest, digestOf(big));
      assert.equal(info.deleted, false);
      assert.ok(info.nuid, "nuid");
      console.error(`put 3 MiB in ${Date.now() - t0} ms`);
    }

    at("get it back (blob)");
    {
      const back = await os.getBlob("big.bin");
      assert.ok(back, "getBlob found it");
      assert.equal(back.length, big.length);
      assert.ok(Buffer.from(back).equals(big), "3 MiB back byte for byte");
    }

    at("get it back (stream)");
    {
      const r = await os.get("big.bin");
      assert.equal(r.info.size, 3 * MiB);
      assert.equal(r.info.description, "random");
      const data = await readAll(r.data);
      assert.ok((await r.error) == null, "no digest error");
      assert.ok(data.equals(big), "streamed get byte for byte");
    }

    at("streamed put with a small chunk size");
    const mid = randomBytes(MiB + 12345);
    {
      const info = await os.put(
        { name: "mid.bin", options: { max_chunk_size: 64 * 1024 } },
        streamOf(mid, 10000),
      );
      assert.equal(info.size, mid.length);
      assert.equal(info.chunks, Math.ceil(mid.length / (64 * 1024)));
      assert.equal(info.digest, digestOf(mid));
      const back = await os.getBlob("mid.bin");
      assert.ok(Buffer.from(back).equals(mid), "streamed put byte for byte");
    }

    at("empty object");
    {
      const info = await os.putBlob({ name: "empty" }, new Uint8Array(0));
      assert.equal(info.size, 0);
      assert.equal(info.chunks, 0);
      const back = await os.getBlob("empty");
      assert.ok(back, "an empty object exists");
      assert.equal(back.length, 0);
    }

    at("info / list");
    {
      const i = await os.info("big.bin");
      assert.equal(i.size, 3 * MiB);
      assert.equal(i.digest, digestOf(big));
      assert.ok(i.mtime, "mtime");
      assert.equal(await os.info("missing"), null);
      assert.equal(await os.getBlob("missing"), null);
      const names = (await os.list()).map((o) => o.name).sort();
      assert.deepEqual(names, ["big.bin", "empty", "mid.bin"]);
      const st = await os.status();
      assert.ok(st.size >= 3 * MiB + mid.length, `status size ${st.size}`);
    }

    at("replace");
    {
      const before = (await jsm.streams.info(`OBJ_${B}`)).state.messages;
      const small = randomBytes(200 * 1024);
      const info = await os.putBlob({ name: "big.bin" }, small);
      assert.equal(info.size, small.length);
      assert.equal(info.chunks, 2);
      const back = await os.getBlob("big.bin");
      assert.ok(Buffer.from(back).equals(small), "replaced content");
      // The old 24 chunks are purged; 2 new chunks, and the meta message rolled up.
      const after = (await jsm.streams.info(`OBJ_${B}`)).state.messages;
      assert.equal(after, before - 24 + 2, `stream messages ${before} -> ${after}`);
    }

    at("delete");
    {
      await os.delete("mid.bin");
      assert.equal(await os.getBlob("mid.bin"), null, "a deleted object is gone");
      const i = await os.info("mid.bin");
      assert.equal(i.deleted, true);
      assert.equal(i.size, 0);
      const names = (await os.list()).map((o) => o.name).sort();
      assert.deepEqual(names, ["big.bin", "empty"]);
      const sub = await jsm.streams.info(`OBJ_${B}`, { subjects_filter: `$O.${B}.C.>` });
      assert.equal(Object.keys(sub.state.subjects ?? {}).length, 1, "only big.bin's chunks remain");
    }

    at("destroy");
    assert.equal(await os.destroy(), true);
    await assert.rejects(jsm.streams.info(`OBJ_${B}`), (e) => e?.name === "StreamNotFoundError");

    await nc.drain();
  },
  120_000,
);
