#!/usr/bin/env bash
# Side-by-side benchmark of Portico with nginx, HAProxy and h2o (and Caddy when installed),
# through the shared harness ../shared/bench/run-peers.sh, in one run so ratios compare.
# Usage: bench/run.sh [--quick|--full] [other run-peers.sh options]
# Results: bench/results/<date>/results.md and raw.tsv (not committed unless copied).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
harness=${RUN_PEERS:-$top/../shared/bench/run-peers.sh}
[ -x "$harness" ] || [ -f "$harness" ] || { echo "bench: $harness not found" >&2; exit 1; }
[ -x "$top/build/portico" ] || make -C "$top" build
out=${RESULTS_DIR:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
# One worker per phase ({workers}); access log off like the peers' configs.
export PORTICO_CMD="$top/build/portico --listen 127.0.0.1:{port} --listen-tls 127.0.0.1:{tls_port} --cert {cert} --key {key} --upstream {backend_url} --workers {workers} --access-log off"
RESULTS_DIR=$out bash "$harness" "$@"
echo "bench: results in $out/results.md"
