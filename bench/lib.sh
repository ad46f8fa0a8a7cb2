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

# Reads the script's options into the caller's variables: `--some-name VALUE` sets `some_name`
# for each name in NAMES, and `--some-name` alone sets it to 1 for each name in FLAGS (both
# space-separated lists of option names without the dashes). Anything else stops the script with
# status 2, so that a mistyped option never runs a long benchmark with a default instead.
# Usage: parse_options "NAMES" "FLAGS" "$@"
parse_options() {
    local _names=" $1 " _flags=" $2 " _opt
    shift 2
    while [[ $# -gt 0 ]]; do
        _opt=${1#--}
        if [[ $1 == --* && $_flags == *" $_opt "* ]]; then
            printf -v "${_opt//-/_}" 1
            shift
        elif [[ $1 == --* && $_names == *" $_opt "* && $# -ge 2 ]]; then
            printf -v "${_opt//-/_}" '%s' "$2"
            shift 2
        elif [[ $1 == --* && $_names == *" $_opt "* ]]; then
            echo "$1 needs a value" >&2
            exit 2
        else
            echo "unknown argument $1" >&2
            exit 2
        fi
    done
}

# Makes the script, however it exits, stop the server it started (its process id in `pid`,
# empty while none runs) and remove the folders given.
cleanup_on_exit() {
    pid=
    _cleanup_dirs=("$@")
    trap _cleanup EXIT
}
_cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "${_cleanup_dirs[@]}"
}
