#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Portico, starts two demo origins
# (127.0.0.1:9001 and :9002) and Portico with examples/quickstart.yaml (127.0.0.1:8080), then
# waits. Ctrl-C, SIGTERM, or any of the three exiting stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
LISTEN_PORT=8080
ORIGIN_PORTS=(9001 9002)

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

for port in "$LISTEN_PORT" "${ORIGIN_PORTS[@]}"; do
    if [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]; then
        echo "quickstart: port $port is already in use; stop what listens there first" >&2
        exit 1
    fi
done

pids=()
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    echo "quickstart: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() {
    local pid
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

# Waits (10 s at most) until http://127.0.0.1:$1/ answers anything while all children live.
wait_http() {
    local _
    for _ in $(seq 100); do
        alive || return 1
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

"$PY" examples/demo_origin.py "${ORIGIN_PORTS[0]}" origin-a &
pids+=($!)
"$PY" examples/demo_origin.py "${ORIGIN_PORTS[1]}" origin-b &
pids+=($!)
for port in "${ORIGIN_PORTS[@]}"; do
    if ! wait_http "$port"; then
        echo "quickstart: demo origin on 127.0.0.1:$port did not start" >&2
        exit 1
    fi
done

build/portico -c examples/quickstart.yaml &
pids+=($!)
if ! wait_http "$LISTEN_PORT"; then
    echo "quickstart: Portico did not come up on 127.0.0.1:$LISTEN_PORT" >&2
    exit 1
fi

echo
echo "Portico is running: try curl http://127.0.0.1:$LISTEN_PORT/"
echo "(Ctrl-C stops Portico and both demo origins)"

# Returns as soon as any of the three exits; the EXIT trap stops the others.
set +e
wait -n
status=$?
# Ctrl-C reaches this shell and Portico together: should Portico's exit be seen first, the INT
# trap runs during this pause and the stop is the quiet one.
sleep 0.3
echo "quickstart: a process exited (status $status); stopping the others" >&2
exit 1
