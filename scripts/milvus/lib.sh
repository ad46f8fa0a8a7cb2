# Shared helpers for the Milvus start/stop scripts (sourced, not run).
#
# Each server kind keeps its state in one directory: the pid of the server's process group, the
# port, the data directory and the log. The directory lives under the temp dir and is keyed by the
# repository path, so two clones on one machine do not stop each other's servers.

milvus_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# State directory for server kind $1 ("lite" or "standalone").
milvus_state_dir() {
    local key
    key=$(milvus_root | cksum | cut -d' ' -f1)
    echo "${TMPDIR:-/tmp}/imgsearch-milvus-$(id -u)-$key/$1"
}

# A TCP port that is free on loopback right now (the kernel picks it).
milvus_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True when something accepts TCP connections on 127.0.0.1:$1.
milvus_port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when the process group recorded in state dir $1 is alive and its port answers.
milvus_running() {
    local dir=$1
    [[ -f "$dir/pid" && -f "$dir/port" ]] || return 1
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || return 1
    milvus_port_answers "$(cat "$dir/port")"
}

# Waits up to $3 seconds for port $2 of the server with pid $1; fails early if it died.
milvus_wait_ready() {
    local pid=$1 port=$2 limit=$3 waited=0
    while ! milvus_port_answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.5
        waited=$((waited + 1))
        if ((waited > limit * 2)); then
            return 1
        fi
    done
}

# Stops the server recorded in state dir $1 by sending signal $2 to its whole process group, then
# SIGKILL after $3 seconds if it is still there; removes the state (and the temp data) afterwards.
milvus_stop() {
    local dir=$1 sig=$2 grace=$3 pid waited=0
    if [[ ! -f "$dir/pid" ]]; then
        echo "not running (no $dir/pid)"
        rm -rf "$dir"
        return 0
    fi
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" -- "-$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do
            sleep 0.5
            waited=$((waited + 1))
            if ((waited > grace * 2)); then
                echo "server $pid ignored SIG$sig for ${grace}s; sending SIGKILL to its group" >&2
                kill -KILL -- "-$pid" 2>/dev/null || true
                break
            fi
        done
    fi
    rm -rf "$dir"
    echo "stopped (pid $pid)"
}

# Starts a server of kind $1 and prints its URL as the last line of stdout once its port answers.
# $2/$3: the stop signal and grace period for this kind (also used to clean a stale state
# directory), $4: seconds to wait for the port, $5: attempts (a kernel-chosen port can be taken by
# someone else before the server binds it). The rest is the command, in which {port} and {data}
# are replaced by the port and the data directory. Idempotent: if the server of this clone
# already runs, it only prints the URL again.
milvus_start() {
    local kind=$1 sig=$2 grace=$3 ready=$4 attempts=$5
    shift 5
    local dir port pid attempt arg
    dir=$(milvus_state_dir "$kind")
    if milvus_running "$dir"; then
        echo "milvus://127.0.0.1:$(cat "$dir/port")"
        return 0
    fi
    # A stale state directory (crashed server) is cleaned before starting afresh.
    if [[ -d "$dir" ]]; then
        milvus_stop "$dir" "$sig" "$grace" >/dev/null
    fi
    for ((attempt = 1; attempt <= attempts; attempt++)); do
        mkdir -p "$dir/data"
        port=$(milvus_free_port)
        local cmd=()
        for arg in "$@"; do
            arg=${arg//\{port\}/$port}
            cmd+=("${arg//\{data\}/$dir/data}")
        done
        # setsid makes the server the leader of its own process group, so stop can signal the group.
        setsid "${cmd[@]}" >"$dir/log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$dir/pid"
        echo "$port" >"$dir/port"
        if milvus_wait_ready "$pid" "$port" "$ready"; then
            echo "milvus $kind ready: pid $pid, data $dir/data, log $dir/log" >&2
            echo "milvus://127.0.0.1:$port"
            return 0
        fi
        echo "milvus $kind attempt $attempt of $attempts failed; log tail:" >&2
        tail -n 30 "$dir/log" >&2 || true
        milvus_stop "$dir" "$sig" "$grace" >/dev/null
    done
    return 1
}
