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
