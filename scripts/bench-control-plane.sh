#!/usr/bin/env bash
# What the control plane costs per message (issue 16): a standalone control plane (SQLite on a
# data dir) and one agent (bucket file:// in a temp dir) as separate processes, MSGS publishes
# of SIZE bytes into one stream over SUBJECTS distinct subjects; then the control plane's store
# growth per message (the database's live pages, read with Python's sqlite3 while it runs, WAL
# included) and its CPU per message (/proc/<pid>/stat), with the agent's for reference.
#
# Usage: scripts/bench-control-plane.sh
# Knobs (environment): MSGS=1000000, SIZE=128, SUBJECTS="1 10", CLIENTS=4, INFLIGHT=5000,
#   BATCH_WRITE=250ms, INFINISTREAM_BIN (skip `cargo build --release`), BENCH_BIN (the bench
#   client, default INFINISTREAM_BIN: lets an older server build be measured), OUT (JSON reports).
# Prints one line per SUBJECTS value: bytes/msg, control-plane µs/msg, agent µs/msg, msgs/s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MSGS=${MSGS:-1000000}
SIZE=${SIZE:-128}
SUBJECTS=${SUBJECTS:-1 10}
CLIENTS=${CLIENTS:-4}
INFLIGHT=${INFLIGHT:-5000}
BATCH_WRITE=${BATCH_WRITE:-250ms}

WORK=$(mktemp -d -t bench-cp.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
CLEAN="$WORK/cp $WORK/bucket"
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

if [[ -z "${INFINISTREAM_BIN:-}" ]]; then
    say "building infinistream (release)"
    (cd "$ROOT" && cargo build --release --bin infinistream >&2)
    INFINISTREAM_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/infinistream
fi
BENCH_BIN=${BENCH_BIN:-$INFINISTREAM_BIN}



# Live bytes of the control plane's database (pages in use, WAL included).
store_bytes() {
    python3 - "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
pages, free, size = (c.execute(f"PRAGMA {p}").fetchone()[0]
                     for p in ("page_count", "freelist_count", "page_size"))
print((pages - free) * size)
EOF
}

say "binary: $("$INFINISTREAM_BIN" --version 2>/dev/null || echo "$INFINISTREAM_BIN")"
printf '%-9s %12s %14s %14s %12s\n' subjects "B/msg" "cp µs/msg" "agent µs/msg" "msgs/s"
for subjects in $SUBJECTS; do
    rm -rf "$WORK/cp" "$WORK/bucket"
    mkdir -p "$WORK/bucket"
    CP_PORT=$(free_port)
    "$INFINISTREAM_BIN" control-plane --group-id bench --group-key bench-key \
        --data-dir "$WORK/cp" --listen "127.0.0.1:$CP_PORT" >"$WORK/cp.$subjects.log" 2>&1 &
    CP_PID=$!
    PIDS+=("$CP_PID")
    wait_port "$CP_PORT"
    AGENT_PORT=$(free_port)
    "$INFINISTREAM_BIN" agent --group-id bench --group-key bench-key \
        --control-plane-url "http://127.0.0.1:$CP_PORT" --bucket-name "file://$WORK/bucket" \
        --host 127.0.0.1 --port "$AGENT_PORT" --http-port 0 --peer-port 0 \
        --batch-write "$BATCH_WRITE" >"$WORK/agent.$subjects.log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    wait_port "$AGENT_PORT"
    URL=nats://127.0.0.1:$AGENT_PORT
    # Create the stream and fill the first pages, so the measured run pays only for messages.
    "$BENCH_BIN" bench publish --url "$URL" --streams 1 --subjects "$subjects" \
        --size "$SIZE" --msgs 10000 --clients 1 --inflight 1000 -q --json >/dev/null
    db=$WORK/cp/control-plane.sqlite3
    bytes0=$(store_bytes "$db")
    cp0=$(cpu_secs "$CP_PID")
    ag0=$(cpu_secs "$AGENT_PID")
    "$BENCH_BIN" bench publish --url "$URL" --streams 1 --subjects "$subjects" \
        --no-create --size "$SIZE" --msgs "$MSGS" --clients "$CLIENTS" --inflight "$INFLIGHT" \
        -q --json >"$OUT/publish.$subjects.json"
    cp1=$(cpu_secs "$CP_PID")
    ag1=$(cpu_secs "$AGENT_PID")
    bytes1=$(store_bytes "$db")
    python3 - "$OUT/publish.$subjects.json" "$subjects" "$MSGS" "$bytes0" "$bytes1" \
        "$cp0" "$cp1" "$ag0" "$ag1" <<'EOF'
import json, sys
report, subjects, n = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
b0, b1, c0, c1, a0, a1 = (float(x) for x in sys.argv[4:])
published = report["published"]
rate = published.get("msgs_per_sec") or published.get("rate") or 0
print(f"{subjects:<9} {(b1 - b0) / n:12.2f} {(c1 - c0) * 1e6 / n:14.3f} "
      f"{(a1 - a0) * 1e6 / n:14.3f} {rate:12.0f}")
EOF
    kill "$AGENT_PID" "$CP_PID"
    wait "$AGENT_PID" "$CP_PID" 2>/dev/null || true
done
