# Shell helpers shared by the benchmark scripts (sourced, not run).

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 60 s for `imgsearch serve` (process PID, log file LOG) to answer on PORT; fails
# with the server's log when the process dies first.
wait_healthy() {
    local port=$1 pid=$2 log=$3
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
        sleep 0.2
    done
    echo "the server did not answer on port $port within 60 s" >&2
    return 1
}

# The imgsearch binary to measure: the path given (a binary built elsewhere; say which build in
# the results), else a release build of this checkout, which it makes first.
imgsearch_bin() {
    if [[ -n "${1:-}" ]]; then
        echo "$1"
        return
    fi
    local target="${CARGO_TARGET_DIR:-$(pwd)/target}"
    echo "== build (release)" >&2
    CARGO_TARGET_DIR="$target" cargo build --release --locked -p imgsearch >&2
    echo "$target/release/imgsearch"
}
