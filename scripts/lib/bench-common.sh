# Shared by scripts/bench-*.sh (sourced, not run): a work directory, background processes killed
# on exit, messages on stderr, free loopback ports. The caller sets WORK and CLEAN (paths removed
# on exit, results are kept) before sourcing.
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # shellcheck disable=SC2086 # CLEAN is a list of paths
    rm -rf $CLEAN
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something listens on the loopback port (20 s at most).
wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    say "nothing listens on port $port"
    return 1
}

# cpu_secs PID: CPU seconds (user + system) the process has used so far.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"
}
