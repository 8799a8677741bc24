#!/usr/bin/env bash
# What balancing and health checking cost. Two parts, both loopback only, both stop what they
# start:
#  1. the peer harness (../shared/bench/run-peers.sh --quick) run for Portico twice: in front of
#     one server, then in front of a pool of three servers (the same origin three times, so the
#     origin's cost is the same) with `--balance ewma --health-check /1k`. Callgrind's
#     instructions per request and wrk's requests per second of the two runs side by side.
#  2. contention across workers: Portico with 2 workers and the same pool, driven by wrk, under
#     `perf record`; prints the share of samples in the balancing code (lb_*, try_*) and in
#     the atomics' cache-line traffic shows up there if it exists.
# Usage: bench/lb.sh [--no-install]   (results in bench/results/lb-<date>/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
harness=${RUN_PEERS:-$top/../shared/bench/run-peers.sh}
[ -f "$harness" ] || { echo "bench: $harness not found" >&2; exit 1; }
[ -x "$top/build/portico" ] || make -C "$top" build
out=${RESULTS_DIR:-$here/results/lb-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
bin=$top/build/portico
base="$bin --listen 127.0.0.1:{port} --workers {workers} --access-log off"

PORTICO_CMD="$base --upstream {backend_url}" RESULTS_DIR=$out/single \
    bash "$harness" --quick --only=portico "$@" >"$out/single.log" 2>&1
PORTICO_CMD="$base --upstream {backend_url} --upstream {backend_url} --upstream {backend_url} --balance ewma --health-check /1k" \
    RESULTS_DIR=$out/pool bash "$harness" --quick --only=portico "$@" >"$out/pool.log" 2>&1

val() { awk -F'\t' -v p="$2" -v t="$3" -v m="$4" '$1==p && $2=="portico" && $3==t && $4==m {print $5; exit}' "$out/$1/raw.tsv"; }
{
    echo "### Balancing cost: one server vs a pool of three (ewma, active checks), Portico only"
    echo
    echo "| metric | one server | pool of 3, ewma + checks | pool / one |"
    echo "| --- | --- | --- | --- |"
    for t in ka close; do
        a=$(val single cg "$t" instr_req); b=$(val pool cg "$t" instr_req)
        r=$(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN{ if (a > 0) printf "%.3f", b / a; else print "NA" }')
        echo "| instructions/request ($t) | ${a:-NA} | ${b:-NA} | $r |"
    done
} | tee "$out/results.md"

# ---- part 2: perf on 2 workers
if ! command -v perf >/dev/null || ! command -v wrk >/dev/null; then
    echo "bench: perf or wrk missing, contention part skipped" | tee -a "$out/results.md"
    exit 0
fi
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
# The origin: a second Portico answering a fixed 1 KiB body itself.
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
cat >"$tmp/origin.yaml" <<EOF
listen: 127.0.0.1:19381
workers: 1
access_log: off
routes:
  - respond: {status: 200, body: "$body"}
EOF
"$bin" -c "$tmp/origin.yaml" 2>"$tmp/origin.log" & pids+=($!)
up=http://127.0.0.1:19381
"$bin" --listen 127.0.0.1:19380 --workers 2 --access-log off --log-level warn \
    --upstream $up --upstream $up --upstream $up --balance ewma --health-check / \
    2>"$tmp/proxy.log" & ppid=$!; pids+=($ppid)
sleep 0.5
perf record -q -g -p "$ppid" -o "$tmp/perf.data" -- sleep 8 >/dev/null 2>&1 & perfpid=$!
wrk -t2 -c64 -d8s http://127.0.0.1:19380/ >"$out/wrk.txt"
wait $perfpid || true
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' >"$out/perf-symbols.txt" || true
share=$(awk '/\] (lb_|try_|pick_|ewma_|candidates|draw|eject)/ {gsub("%","",$1); s+=$1} END{printf "%.2f", s}' "$out/perf-symbols.txt")
{
    echo
    echo "### 2 workers, pool of 3 (ewma + checks), wrk -t2 -c64 -d8s, perf record of the proxy"
    echo
    echo "- requests/s: $(awk '/Requests\/sec/{print $2}' "$out/wrk.txt")"
    echo "- share of the proxy's CPU samples in balancing code (lb_*, pick_*, try_*, ewma_*, candidates, draw, eject): ${share}%"
    echo "- top symbols:"
    echo '```'
    head -15 "$out/perf-symbols.txt"
    echo '```'
} | tee -a "$out/results.md"
echo "bench: results in $out/results.md"
