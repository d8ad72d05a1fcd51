// Shared by the nats.js scenarios: argv, an overall timeout, a server-side barrier, polling.
import assert from "node:assert/strict";

/** Runs `main(url)` with the URL from argv, prints `<name>: ok`, exits non-zero on failure or
 * when the whole scenario takes longer than `timeoutMs`. */
export function run(name, main, timeoutMs = 60_000) {
  const url = process.argv[2];
  if (!url) {
    console.error(`usage: node ${name}.mjs nats://127.0.0.1:4222`);
    process.exit(2);
  }
  const timer = setTimeout(() => {
    console.error(`${name}: FAILED: timed out after ${timeoutMs} ms (last step: ${step.current})`);
    process.exit(1);
  }, timeoutMs);
  main(url).then(
    () => {
      clearTimeout(timer);
      console.log(`${name}: ok`);
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      console.error(`${name}: FAILED at step "${step.current}":`, err);
      process.exit(1);
    },
  );
}

/** The step being run, printed when a scenario fails or times out. */
export const step = { current: "start" };
export function at(name) {
  step.current = name;
}

/** A server-side barrier: a request nobody answers comes back (no responders) after everything
 * this connection sent before it, acks included. */
export async function sync(nc) {
  await assert.rejects(nc.request("sync.nobody.listens", "", { timeout: 5000 }), (e) => {
    assert.ok(isNoResponders(e), `sync expected no responders, got ${e}`);
    return true;
  });
}

export function isNoResponders(e) {
  return (
    e?.name === "NoResponders" ||
    (typeof e?.isNoResponders === "function" && e.isNoResponders())
  );
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `get()` until `check(value)` holds (5 s at most), then asserts it. Plain acks are fire
 * and forget: a barrier proves the server got them, not that the consumer applied them. */
export async function until(get, check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (check(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(v, null, 1)}`);
    await sleep(50);
  }
}

/** Rejects after `ms`: a bound on one await inside a scenario. */
export function within(ms, promise, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]);
}

/** One async iterator (a subscription, a `consume()`, a KV watch) read step by step with a time
 * bound on each step; a step that timed out is picked up by the next call, so nothing is lost. */
export class Reader {
  constructor(iterable) {
    this.it = iterable[Symbol.asyncIterator]();
    this.pending = null;
  }
  /** The next value, or `null` when the iterator ended; throws after `ms`. */
  async next(ms, what) {
    if (!this.pending) this.pending = this.it.next();
    const r = await within(ms, this.pending, what);
    this.pending = null;
    return r.done ? null : r.value;
  }
  /** `n` values within `ms` in all. */
  async take(n, ms, what) {
    const deadline = Date.now() + ms;
    const out = [];
    while (out.length < n) {
      const v = await this.next(Math.max(1, deadline - Date.now()), `${what} (${out.length}/${n})`);
      if (v === null) assert.fail(`${what}: iterator ended after ${out.length}/${n}`);
      out.push(v);
    }
    return out;
  }
  /** Asserts nothing arrives for `ms` (the iterator may end instead). */
  async none(ms, what) {
    let v;
    try {
      v = await this.next(ms, what);
    } catch (e) {
      if (String(e.message).includes("not done within")) return;
      throw e;
    }
    if (v !== null) assert.fail(`${what}: unexpected ${describe(v)}`);
  }
  /** Whatever is still buffered until the iterator ends (within `ms`): after a consume's
   * stop(), messages that had already arrived are yielded before the end. */
  async rest(ms, what) {
    const deadline = Date.now() + ms;
    const out = [];
    for (;;) {
      const v = await this.next(Math.max(1, deadline - Date.now()), `${what} (after ${out.length})`);
      if (v === null) return out;
      out.push(v);
    }
  }
  /** The iterator ended (or ends within `ms`). */
  async ends(ms, what) {
    const v = await this.next(ms, what);
    if (v !== null) assert.fail(`${what}: expected the end, got ${describe(v)}`);
  }
}

function describe(v) {
  if (v && typeof v.subject === "string") {
    return `message ${v.subject} ${v.seq ?? ""} ${safeString(v)}`;
  }
  return JSON.stringify(v);
}

function safeString(m) {
  try {
    return JSON.stringify(m.string());
  } catch {
    return "";
  }
}

/** A predicate for `assert.rejects`: a JetStream API error with this `err_code` (and HTTP-like
 * `code`) whose description matches `text`. */
export function apiError(errCode, status, text) {
  return (e) => {
    const api = typeof e?.apiError === "function" ? e.apiError() : null;
    assert.ok(api, `expected a JetStream API error ${errCode}, got ${e?.name}: ${e?.message}`);
    assert.equal(api.err_code, errCode, `err_code of "${api.description}"`);
    assert.equal(api.code, status, `code of "${api.description}"`);
    if (text) assert.match(api.description, text);
    return true;
  };
}

/** Removes a stream left over from an earlier run by hand against the same server. */
export async function dropStream(jsm, name) {
  try {
    await jsm.streams.delete(name);
  } catch (e) {
    if (e?.code !== 10059) throw e;
  }
}

/** Everything an async lister (`streams.list()`, `names()`, `kv.keys()`) yields. */
export async function all(iter) {
  const out = [];
  for await (const v of iter) out.push(v);
  return out;
}

/** Everything a fetch() yields, and how long it took (ms) to end. */
export async function drainFetch(iter, ack = true) {
  const t0 = Date.now();
  const out = [];
  for await (const m of iter) {
    out.push(m);
    if (ack) m.ack();
  }
  return { msgs: out, ms: Date.now() - t0 };
}

export const seqs = (msgs) => msgs.map((m) => m.seq);
