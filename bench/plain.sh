#!/usr/bin/env bash
# Plain-HTTP benchmark: Portico beside nginx, HAProxy and h2o, in one run, paired and interleaved.
# The plain-HTTP rows of ../shared/bench/run-peers.sh, with the peers' configurations from there
# (one worker/thread each, keep-alive to the origin, no added headers), all in front of the same
# origin (nginx, 1 worker, static files, sendfile) on the load CPU.
#
# Rows (every cell run for every target, interleaved in REPS rounds with the target order rotated
# each round, direct included; medians of the valid rounds reported):
#   ka1k     wrk -t1 -c50 keep-alive on /1k (1024 bytes)
#   ka100k   wrk -t1 -c50 keep-alive on /100k (102400 bytes)
#   close1k  wrk -t1 -c50 -H 'Connection: close' on /1k: one new client connection per request
# Each cell runs DUR seconds; wrk (pinned to LOAD_CPU, like the origin) reports exact counts through
# a Lua done() hook: requests, duration, bytes, socket errors (connect/read/write/timeout) and
# responses with a status >= 400 (wrk's "status" error count).
# Targets: direct (wrk straight to the origin), nginx, HAProxy, h2o (a peer that is not installed
# is skipped and the report says so), Portico. Each proxy runs 1 worker pinned to PROXY_CPU and
# must return the origin's exact /1k and /100k (cmp) before anything is measured.
#
# A cell is valid when wrk exits 0, prints its RESULT line, counts requests > 0, no socket error
# of any kind, no status >= 400, and read at least requests x body-size bytes. Otherwise it is
# left out of the medians and listed in the notes.
# wrk's error counts on close1k: some wrk versions count a read error on close. The wrk here
# (Debian 4.1.0-3+b2) reported 0 connect/read/write/timeout errors in every close1k run made
# while writing this script: 28 runs of 2-3 s by hand (31,000-64,000 requests each) straight to
# the origin and through each of nginx, HAProxy, h2o and Portico, then every close1k cell of this
# script's runs (over 100). With a response carrying "Connection: close" it reads to the end of
# the response, closes and reconnects without counting an error. So every socket error counts as a
# real one.
# The warm-up runs close1k straight to the origin and the report shows what wrk counted there: a
# wrk that counts read errors on a clean close would show them in that line (and a warning in the
# log), and then every close1k cell would be marked invalid rather than silently accepted.
#
# Measured beside req/s, per cell: the proxy's CPU time per request (utime+stime of its process
# tree, all threads), the proxy's CPU %, the load CPU's busy %, the origin's CPU time per request,
# and other_pct: task time on the two CPUs not spent by the proxy, the origin or wrk (other work on
# the machine, as a share of one CPU). A round where other_pct exceeds OTHER_MAX is left out of a
# cell's median when the cell has a clean round (a cell with none is marked as disturbed).
# Ratio to direct: the median over rounds of target req/s / direct req/s in the same round.
# Direct is no ceiling on close1k and ka100k: straight to the origin, all the work is on the load
# CPU, while behind a proxy part of it moves to the proxy's CPU (on close1k the origin sees
# kept-alive connections and the proxy accepts the new ones; on ka100k the kernel's loopback
# receive work for what the proxy sends runs on the sender's CPU), so proxies can beat direct there.
#
# Usage: bench/plain.sh [--quick]     default about 6 minutes, --quick (REPS=1 DUR=1) about 30 s
# Environment: REPS(7) DUR(3, seconds per cell) WARM(1, seconds per warm-up cell, 0 = none)
#   PROXY_CPU(1) LOAD_CPU(0) OTHER_MAX(10, % of a CPU) CELL_TIMEOUT(DUR+30)
#   PORTICO (binary, default build/portico; not built here: run make build first)
#   PORTICO_HEADERS (on: Portico as shipped, adding its forwarding fields to each request, the
#   peers as run-peers.sh configures them, adding none; off: none added by anyone, see
#   conf_portico; all: Portico as shipped and nginx and HAProxy configured to do the same work,
#   see peer_fields_nginx_http in bench/lib.sh; h2o is left out there, as its version here
#   cannot add X-Forwarded-Host, Forwarded or X-Request-Id)
#   PEERS (default "nginx haproxy h2o"), NGINX HAPROXY H2O (the peers' binaries, default from PATH;
#   the origin always runs nginx from PATH), RESULTS_DIR (default bench/results/<UTC time>-plain).
# Ports 19490 (origin) and 19491-19494 (nginx, HAProxy, h2o, Portico), all on 127.0.0.1; the script
# stops if one is busy. Every process started here is stopped on exit, Ctrl-C and errors included.
set -euo pipefail

MODE=default
for a in "$@"; do
    case "$a" in
        --quick) MODE=quick ;;
        -h | --help) awk 'NR > 1 && /^set -euo/ {exit} NR > 1' "$0"; exit 0 ;;
        *) echo "plain.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done
if [ "$MODE" = quick ]; then
    : "${REPS:=1}" "${DUR:=1}"
else
    : "${REPS:=7}" "${DUR:=3}"
fi
: "${WARM:=1}" "${OTHER_MAX:=10}" "${CELL_TIMEOUT:=$((DUR + 30))}"
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
T0=$(date +%s)

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
top=$(cd "$here/.." && pwd)
PORTICO=${PORTICO:-$top/build/portico}
PORTICO_HEADERS=${PORTICO_HEADERS:-on}
case $PORTICO_HEADERS in on | off | all) ;; *) echo "plain.sh: PORTICO_HEADERS must be on, off or all" >&2; exit 2 ;; esac
if [ ! -f "$PORTICO" ] || [ ! -x "$PORTICO" ]; then
    die "PORTICO=$PORTICO is not an executable file (this script does not build: run 'make build' first)"
fi
for c in nginx wrk curl cmp taskset ss timeout; do
    command -v "$c" >/dev/null || die "$c is required"
done
ver_portico=$("$PORTICO" --version 2>/dev/null | awk '{print $2}' || true)
PORTICO_MTIME=$(stat -c %Y "$PORTICO")
PORTICO_BUILT=$(date -u -d "@$PORTICO_MTIME" +%Y-%m-%dT%H:%MZ)

BP=19490 # origin
declare -A PORT=([nginx]=19491 [haproxy]=19492 [h2o]=19493 [portico]=19494)
declare -A LABEL=([direct]=direct [nginx]=nginx [haproxy]=HAProxy [h2o]=h2o [portico]=Portico)
declare -A BIN=([nginx]=${NGINX:-nginx} [haproxy]=${HAPROXY:-haproxy} [h2o]=${H2O:-h2o} [portico]=$PORTICO)
PEERLIST=() # the peers that run
SKIPPED=()
for n in ${PEERS:-nginx haproxy h2o}; do
    case $n in nginx | haproxy | h2o) ;; *) die "PEERS: unknown peer '$n' (nginx, haproxy, h2o)" ;; esac
    if [ "$n" = h2o ] && [ "$PORTICO_HEADERS" = all ]; then
        log "h2o left out with PORTICO_HEADERS=all: its version here cannot add the same fields"
        SKIPPED+=("h2o (PORTICO_HEADERS=all)")
        continue
    fi
    if command -v "${BIN[$n]}" >/dev/null; then
        PEERLIST+=("$n")
    else
        log "${LABEL[$n]} is not installed (no '${BIN[$n]}' in PATH): skipped"
        SKIPPED+=("${LABEL[$n]}")
    fi
done
PROXIES=("${PEERLIST[@]}" portico)
TARGETS=(direct "${PROXIES[@]}")

# ---------------------------------------------------------------- processes and cleanup
TMP=$(mktemp -d /tmp/portico-plain.XXXXXX)
chmod 755 "$TMP"
STARTED=() # long-lived processes (origin, proxies)
CUR=""     # the wrk of the cell running now
cleanup() {
    local p
    [ -n "$CUR" ] && kill -0 "$CUR" 2>/dev/null && stop_pid "$CUR"
    for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && stop_pid "$p"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

OUT=${RESULTS_DIR:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)-plain}
mkdir -p "$OUT/cells" "$OUT/conf"
RAW=$OUT/raw.tsv
: >"$RAW"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=65536
# run-peers.sh uses min(30000, NOFILE - 200); HAProxy wants two descriptors per connection and
# warns when maxconn does not fit, so half of that here. 50 connections either way.
MAXCONN=$(((NOFILE - 200) / 2))
[ "$MAXCONN" -gt 16384 ] && MAXCONN=16384

for p in $BP "${PORT[@]}"; do port_busy "$p" && die "port $p already in use (127.0.0.1:$p)"; done
# fetch <url> <file>: the body into file; prints the HTTP status (000 when nothing answered)
fetch() { curl -s --max-time 10 -o "$2" -w '%{http_code}' "$1" || true; }
check_body() { # name port: die unless /1k and /100k are the origin's files byte for byte
    local f st
    for f in 1k 100k; do
        st=$(fetch "http://127.0.0.1:$2/$f" "$TMP/check.body")
        cmp -s "$TMP/check.body" "$TMP/www/$f" ||
            die "$1 does not return the origin's /$f (HTTP $st, $(wc -c <"$TMP/check.body") bytes, expected $(wc -c <"$TMP/www/$f"))"
    done
}

# ---------------------------------------------------------------- content and origin (as run-peers.sh)
mkdir -p "$TMP/www"
# base64 of random bytes as run-peers.sh, but of exactly 3/4 of the size instead of cut with
# "| head -c": under pipefail, base64 killed by SIGPIPE when head exits would stop the script
head -c 768 /dev/urandom | base64 -w0 >"$TMP/www/1k"
head -c 76800 /dev/urandom | base64 -w0 >"$TMP/www/100k"
chmod -R a+rX "$TMP/www"
declare -A SIZE=([1k]=1024 [100k]=102400)
for f in 1k 100k; do
    [ "$(wc -c <"$TMP/www/$f")" = "${SIZE[$f]}" ] || die "/$f is not ${SIZE[$f]} bytes"
done

mkdir -p "$TMP/origin"
cat >"$TMP/origin/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $TMP/origin/nginx.pid;
error_log $TMP/origin/error.log warn;
events { worker_connections $MAXCONN; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=64;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  client_body_temp_path $TMP/origin/t_body; proxy_temp_path $TMP/origin/t_proxy;
  fastcgi_temp_path $TMP/origin/t_fcgi; uwsgi_temp_path $TMP/origin/t_uwsgi; scgi_temp_path $TMP/origin/t_scgi;
  server { listen 127.0.0.1:$BP backlog=4096; root $TMP/www; }
}
EOF
cp "$TMP/origin/nginx.conf" "$OUT/conf/origin-nginx.conf"
ORIGIN_CMD=(nginx -p "$TMP/origin/" -e "$TMP/origin/error.log" -c "$TMP/origin/nginx.conf" -g "daemon off;")

# start_proc <name> <port> <dir> <cmd...>: start it pinned, wait until it answers -> SPID
start_proc() {
    local n=$1 port=$2 d=$3 cpu st=0
    shift 3
    cpu=$PROXY_CPU
    [ "$n" = origin ] && cpu=$LOAD_CPU
    taskset -c "$cpu" "$@" >"$d/stdout.log" 2>&1 &
    SPID=$!
    STARTED+=("$SPID")
    for _ in $(seq 200); do
        if ! kill -0 "$SPID" 2>/dev/null; then
            wait "$SPID" || st=$?
            tail -5 "$d/stdout.log" "$d/error.log" 2>/dev/null >&2 || true
            die "$n ($1) exited with status $st before answering on 127.0.0.1:$port (its output, if any, is above)"
        fi
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/1k" && return 0
        sleep 0.1
    done
    tail -5 "$d/stdout.log" "$d/error.log" 2>/dev/null >&2 || true
    die "$n ($1) is running but did not answer http://127.0.0.1:$port/1k within 20 s"
}
start_proc origin "$BP" "$TMP/origin" "${ORIGIN_CMD[@]}"
ORIGIN=$SPID
check_body origin "$BP"

# ---------------------------------------------------------------- proxies (configurations as run-peers.sh)
conf_nginx() {
    if [ "$PORTICO_HEADERS" = all ]; then
        peer_conf_nginx "$1" "    listen 127.0.0.1:${PORT[nginx]} backlog=4096;" \
            "$(peer_fields_nginx_http)" "$(peer_fields_nginx_location http)"
    else
        peer_conf_nginx "$1" "    listen 127.0.0.1:${PORT[nginx]} backlog=4096;"
    fi
    cp "$1/nginx.conf" "$OUT/conf/nginx.conf"
}
conf_haproxy() {
    if [ "$PORTICO_HEADERS" = all ]; then
        peer_conf_haproxy "$1" "  bind 127.0.0.1:${PORT[haproxy]} backlog 4096" "" "$(peer_fields_haproxy http)"
    else
        peer_conf_haproxy "$1" "  bind 127.0.0.1:${PORT[haproxy]} backlog 4096" ""
    fi
    cp "$1/haproxy.cfg" "$OUT/conf/haproxy.cfg"
}
conf_h2o() {
    cat >"$1/h2o.conf" <<EOF
num-threads: 1
max-connections: $MAXCONN
error-log: $1/error.log
http1-request-timeout: 60
listen:
  host: 127.0.0.1
  port: ${PORT[h2o]}
proxy.timeout.keepalive: 60000
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$BP/
EOF
    cp "$1/h2o.conf" "$OUT/conf/h2o.conf"
}
# PORTICO_HEADERS=off: Portico adds none of its request fields (X-Forwarded-*, Forwarded, Via,
# X-Request-Id), so the origin gets what the peers' configurations send it (request line and
# Host): the same work. The default (on) measures Portico as shipped, which the origin pays for
# in parsing (about 0.2 µs of its CPU per request on ka1k).
conf_portico() {
    portico_conf_bare "$1" "  - 127.0.0.1:${PORT[portico]}"
    cp "$1/portico.yaml" "$OUT/conf/portico.yaml"
}
proxy_cmd() { # name dir -> CMD array
    case $1 in
        nginx) CMD=("${BIN[nginx]}" -p "$2/" -e "$2/error.log" -c "$2/nginx.conf" -g "daemon off;") ;;
        haproxy) CMD=("${BIN[haproxy]}" -db -f "$2/haproxy.cfg") ;;
        h2o) CMD=("${BIN[h2o]}" -c "$2/h2o.conf") ;;
        portico)
            if [ "$PORTICO_HEADERS" = off ]; then
                conf_portico "$2"
                CMD=("$PORTICO" -c "$2/portico.yaml")
            else
                CMD=("$PORTICO" --listen "127.0.0.1:${PORT[portico]}" --upstream "http://127.0.0.1:$BP"
                    --workers 1 --access-log off)
            fi
            ;;
    esac
}
declare -A PID CMDLINE GONE
for n in "${PROXIES[@]}"; do
    d=$TMP/$n
    mkdir -p "$d"
    [ "$n" = portico ] || "conf_$n" "$d"
    proxy_cmd "$n" "$d"
    CMDLINE[$n]="taskset -c $PROXY_CPU$(printf ' %q' "${CMD[@]}")"
    start_proc "$n" "${PORT[$n]}" "$d" "${CMD[@]}"
    PID[$n]=$SPID
    check_body "${LABEL[$n]}" "${PORT[$n]}"
done
log "mode=$MODE reps=$REPS dur=${DUR}s; $(for n in "${PROXIES[@]}"; do printf '%s ' "${LABEL[$n]}"; done)up on CPU$PROXY_CPU, each returns the origin's /1k and /100k; origin and wrk on CPU$LOAD_CPU"

# ---------------------------------------------------------------- one cell
cat >"$TMP/stats.lua" <<'EOF'
done = function(s, lat, req)
  local e = s.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d %d\n", s.requests, s.duration, s.bytes,
    e.connect, e.read, e.write, e.timeout, e.status, lat:percentile(50), lat:percentile(99)))
end
EOF
cp "$TMP/stats.lua" "$OUT/conf/"
WRK=(wrk -t1 -c50 --timeout 5s -s "$TMP/stats.lua")
row_args() { # row -> ARGS (after -d), FILE
    case $1 in
        ka1k) ARGS=(); FILE=1k ;;
        ka100k) ARGS=(); FILE=100k ;;
        close1k) ARGS=(-H 'Connection: close'); FILE=1k ;;
    esac
}
tport() { if [ "$1" = direct ]; then echo "$BP"; else echo "${PORT[$1]}"; fi; }
# run_wrk <row> <target> <seconds> <output file>: wrk in the background, so that a signal
# reaches the trap at once and cleanup can stop it; RC = its exit status
run_wrk() {
    row_args "$1"
    RC=0
    timeout --foreground "$CELL_TIMEOUT" taskset -c "$LOAD_CPU" "${WRK[@]}" -d"$3s" "${ARGS[@]}" \
        "http://127.0.0.1:$(tport "$2")/$FILE" >"$4" 2>&1 &
    CUR=$!
    wait "$CUR" || RC=$?
    CUR=""
}
cell() { # row target rep
    local row=$1 tg=$2 rep=$3 f pid="" c0 c1 b0 b1 t0 t1 k0 k1 q0 q1 o0 o1 h0 h1 valid=1 note="" r
    local n dus bytes ec er ew et es p50 p99 other st
    [ "$tg" = direct ] || pid=${PID[$tg]}
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        if [ -z "${GONE[$tg]:-}" ]; then # first time: reap it for its exit status
            st=0
            wait "$pid" 2>/dev/null || st=$?
            GONE[$tg]="exited with status $st"
            [ "$st" -le 128 ] || GONE[$tg]+=" (signal $((st - 128)))"
            GONE[$tg]+=" before round $rep, $row"
        fi
        record "$row" "$tg" "$rep" valid 0
        record "$row" "$tg" "$rep" note "proxy not running: ${GONE[$tg]}"
        log "$row $tg round $rep: INVALID: ${LABEL[$tg]} (pid $pid) ${GONE[$tg]}"
        return 0
    fi
    f=$OUT/cells/$row-$tg-$rep.txt
    snapshot "$pid"
    read -r c0 b0 t0 k0 q0 o0 h0 <<<"$SNAP"
    run_wrk "$row" "$tg" "$DUR" "$f"
    snapshot "$pid"
    read -r c1 b1 t1 k1 q1 o1 h1 <<<"$SNAP"
    r=$(grep '^RESULT ' "$f" | tail -1 || true)
    read -r _ n dus bytes ec er ew et es p50 p99 <<<"$r"
    [ "$RC" = 0 ] || { valid=0; note+="wrk exit $RC$([ "$RC" != 124 ] || echo " (timeout ${CELL_TIMEOUT}s)"); "; }
    if [ -z "$r" ]; then
        valid=0
        note+="no RESULT line ($(grep -v '^RESULT' "$f" | tail -1)); "
        n=0
    else
        [ "$n" -gt 0 ] || { valid=0; note+="0 requests; "; }
        [ $((ec + er + ew + et)) = 0 ] || { valid=0; note+="socket errors: connect $ec, read $er, write $ew, timeout $et; "; }
        [ "$es" = 0 ] || { valid=0; note+="$es responses with status >= 400; "; }
        [ "$bytes" -ge $((n * ${SIZE[$FILE]})) ] || { valid=0; note+="$bytes bytes read for $n responses of ${SIZE[$FILE]}; "; }
    fi
    record "$row" "$tg" "$rep" valid "$valid"
    [ -z "$note" ] || record "$row" "$tg" "$rep" note "${note%; }"
    if [ -n "$r" ] && [ "$n" -gt 0 ] && [ "$dus" -gt 0 ]; then
        record "$row" "$tg" "$rep" rps "$(awk -v n="$n" -v d="$dus" 'BEGIN {printf "%.0f", n / (d / 1e6)}')"
        record "$row" "$tg" "$rep" MBps "$(awk -v b="$bytes" -v d="$dus" 'BEGIN {printf "%.1f", b / (d / 1e6) / 1e6}')"
        record "$row" "$tg" "$rep" p50ms "$(awk -v v="$p50" 'BEGIN {printf "%.3f", v / 1000}')"
        record "$row" "$tg" "$rep" p99ms "$(awk -v v="$p99" 'BEGIN {printf "%.3f", v / 1000}')"
        if [ -n "$pid" ]; then
            record "$row" "$tg" "$rep" cpu_us_req "$(awk -v c=$((c1 - c0)) -v h="$HZ" -v s="$n" 'BEGIN {printf "%.1f", 1e6 * c / h / s}')"
            record "$row" "$tg" "$rep" cpu_pct "$(awk -v c=$((c1 - c0)) -v h="$HZ" -v d="$dus" 'BEGIN {printf "%.0f", 100 * c / h / (d / 1e6)}')"
        fi
        record "$row" "$tg" "$rep" load_pct "$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')"
        record "$row" "$tg" "$rep" origin_us_req "$(awk -v c=$((o1 - o0)) -v h="$HZ" -v s="$n" 'BEGIN {printf "%.1f", 1e6 * c / h / s}')"
        record "$row" "$tg" "$rep" wrk_us_req "$(awk -v c=$((h1 - h0)) -v h="$HZ" -v s="$n" 'BEGIN {printf "%.1f", 1e6 * c / h / s}')"
        # task time on the two CPUs not spent by the proxy, the origin or wrk: other work on the
        # machine during the cell, as a share of one CPU (a few % is measurement slack)
        other=$(awk -v a=$((k1 - k0 + q1 - q0)) -v b=$((c1 - c0 + o1 - o0 + h1 - h0)) -v t=$((t1 - t0)) \
            'BEGIN {v = t ? 100 * (a - b) / t : 0; printf "%.0f", v < 0 ? 0 : v}')
        record "$row" "$tg" "$rep" other_pct "$other"
        record "$row" "$tg" "$rep" other_raw "$(awk -v a=$((k1 - k0 + q1 - q0)) -v b=$((c1 - c0 + o1 - o0 + h1 - h0)) \
            -v t=$((t1 - t0)) 'BEGIN {printf "%.1f", t ? 100 * (a - b) / t : 0}')" # unclamped, for checking
        [ "$other" -le "$OTHER_MAX" ] || log "$row $tg round $rep: other processes used ${other}% of a CPU"
    fi
    [ "$valid" = 1 ] || log "$row $tg round $rep: INVALID: ${note%; }"
}

# ---------------------------------------------------------------- warm-up and the close1k calibration
ROWS=(ka1k ka100k close1k)
CAL="not run (WARM=0)"
if [ "$WARM" -gt 0 ]; then
    for tg in "${TARGETS[@]}"; do
        for row in "${ROWS[@]}"; do
            run_wrk "$row" "$tg" "$WARM" "$TMP/warm.txt"
            r=$(grep '^RESULT ' "$TMP/warm.txt" | tail -1 || true)
            [ -n "$r" ] || die "warm-up: wrk $row on $tg printed no RESULT line (exit $RC): $(tail -2 "$TMP/warm.txt")"
            read -r _ n _ _ ec er ew et es _ _ <<<"$r"
            if [ "$tg/$row" = direct/close1k ]; then
                CAL="$n requests, socket errors connect $ec / read $er / write $ew / timeout $et, status >= 400: $es"
                [ $((ec + er + ew + et + es)) = 0 ] ||
                    log "WARNING: wrk counts errors on close1k straight to the origin ($CAL): this wrk may count a clean close as an error; close1k cells will be invalid"
            elif [ $((ec + er + ew + et + es)) != 0 ]; then
                log "warm-up: ${LABEL[$tg]} $row: errors connect $ec read $er write $ew timeout $et status $es"
            fi
        done
    done
    log "warm-up done (${WARM}s per target and row); wrk close1k straight to the origin: $CAL"
fi

# ---------------------------------------------------------------- rounds
for rep in $(seq "$REPS"); do
    # rotate the target order each round so no target always runs first
    k=$(((rep - 1) % ${#TARGETS[@]}))
    order=("${TARGETS[@]:k}" "${TARGETS[@]:0:k}")
    for row in "${ROWS[@]}"; do
        for tg in "${order[@]}"; do cell "$row" "$tg" "$rep"; done
    done
    log "round $rep/$REPS done (order: ${order[*]})"
done

# ---------------------------------------------------------------- logs
# Each proxy's and the origin's own log (startup notices, warnings), kept with the results.
mkdir -p "$OUT/logs"
declare -A LOGSUM
for n in origin "${PROXIES[@]}"; do
    : >"$OUT/logs/$n.log"
    for f in "$TMP/$n/stdout.log" "$TMP/$n/error.log"; do [ ! -f "$f" ] || cat "$f" >>"$OUT/logs/$n.log"; done
    LOGSUM[$n]="lines: $(grep -c . "$OUT/logs/$n.log" || true)"
done
# nginx with run-peers.sh's configuration keeps its default proxy buffers (8 x 4 KiB): a larger
# response that the client reads slower than the origin sends is spooled to a temporary file
# (logged at warn level); say so when it happened
for n in origin nginx; do
    [ -n "${LOGSUM[$n]:-}" ] || continue
    k=$(grep -c 'buffered to a temporary file' "$OUT/logs/$n.log" || true)
    [ "$k" = 0 ] || LOGSUM[$n]+=" ($k 'an upstream response is buffered to a temporary file')"
done

# ---------------------------------------------------------------- report
median() { sort -g | awk '{a[NR]=$1} END {if (!NR) print "NA"; else if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'; }
med() { # row target metric: median over the rounds used
    local use
    use=$(rounds "$1" "$2" | tr '\n' ' ')
    awk -F'\t' -v r="$1" -v t="$2" -v m="$3" -v use=" $use" '
        $1==r && $2==t && $4==m && index(use, " " $3 " ") && $5!="NA" {print $5}' "$RAW" | median
}
# dratio <row> <target>: median over rounds of target req/s / direct req/s in the same round,
# over the rounds used for both cells
dratio() {
    local ut ud
    ut=$(rounds "$1" "$2" | tr '\n' ' ')
    ud=$(rounds "$1" direct | tr '\n' ' ')
    awk -F'\t' -v r="$1" -v t="$2" -v ut=" $ut" -v ud=" $ud" '
        $1==r && $4=="rps" && $2==t && index(ut, " " $3 " ") {x[$3]=$5}
        $1==r && $4=="rps" && $2=="direct" && index(ud, " " $3 " ") {d[$3]=$5}
        END {for (k in x) if ((k in d) && d[k] > 0) print x[k] / d[k]}' "$RAW" |
        median | awk '{if ($1=="NA") print "NA"; else printf "%.2f\n", $1}'
}
# paired <row>: Portico / best peer within each round (cells a few seconds apart, so a change in
# the machine's speed between rounds cancels out), as "median (min-max, k/n rounds >= 1.00)".
# The best peer of a round is the fastest valid peer cell of that round. Rounds where one of the
# cells compared (Portico's or a valid peer's) was disturbed (other_pct > OTHER_MAX) are left out
# when at least one round is clean (otherwise all are used, marked §).
paired() {
    awk -F'\t' -v r="$1" -v x="$OTHER_MAX" -v peers="${PEERLIST[*]}" '
        $1==r && $4=="valid" {ok[$2 SUBSEP $3]=$5; reps[$3]=1}
        $1==r && $4=="rps" {v[$2 SUBSEP $3]=$5}
        $1==r && $4=="other_pct" {o[$2 SUBSEP $3]=$5}
        END {
            np = split(peers, pp, " ")
            for (k in reps) {
                if (ok["portico", k] != 1 || v["portico", k] == "") continue
                b = ""; dist = (o["portico", k] + 0 > x)
                for (i = 1; i <= np; i++) {
                    q = pp[i]
                    if (ok[q, k] != 1 || v[q, k] == "") continue
                    if (o[q, k] + 0 > x) dist = 1
                    if (b == "" || v[q, k] + 0 > b + 0) b = v[q, k]
                }
                if (b != "" && b > 0) print dist, v["portico", k] / b
            }
        }' "$RAW" | awk '{d[NR]=$1; v[NR]=$2; if (!$1) c++} END {for (i=1;i<=NR;i++) if (!c || !d[i]) print v[i], (c ? "" : "§")}' |
        sort -g | awk '{a[NR]=$1; s=$2; if ($1 >= 0.995) k++}
        END {if (!NR) {print "NA"; exit}
             m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
             printf "%.2f (%.2f-%.2f, %d/%d rounds >= 1.00)%s\n", m, a[1], a[NR], k, NR, s ? " " s : ""}'
}
dec() { awk -v v="$2" -v d="$1" 'BEGIN {if (v=="NA" || v=="") print "NA"; else printf "%.*f\n", d, v}'; } # decimals value
desc() {
    case $1 in
        ka1k) echo "ka1k: keep-alive /1k, req/s" ;;
        ka100k) echo "ka100k: keep-alive /100k, req/s · MB/s" ;;
        close1k) echo "close1k: Connection: close /1k, req/s" ;;
    esac
}
cellnote() { # a cell with no valid round: why
    local n
    n=$(awk -F'\t' -v r="$1" -v t="$2" '$1==r && $2==t && $4=="note" {print $5; exit}' "$RAW")
    echo "${n:-no valid round}"
}
ver() { # first line of a --version output; empty when the program is not installed
    command -v "$1" >/dev/null || return 0
    "$@" 2>&1 | head -1 || true
}
ver_nginx=$(ver nginx -v | sed 's/.*\///')
ver_haproxy=$(ver "${BIN[haproxy]}" -v | awk '{print $3}')
ver_h2o=$(ver "${BIN[h2o]}" --version | awk '{print $3}')
ver_wrk=$(ver wrk -v | awk '{print $2}')
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' || true)
# read-only; --no-optional-locks: no index refresh, so no index.lock while others work in the tree
commit=$(git -C "$top" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
# (into a variable first: with pipefail, "git status | grep -q ." fails when grep's early exit
# gives git a SIGPIPE, and src/ would read as clean)
dirty=$(git -C "$top" --no-optional-locks status --porcelain -- src 2>/dev/null || true)
[ -z "$dirty" ] || dirty=" (src/ has uncommitted changes)"
replaced=""
[ "$(stat -c %Y "$PORTICO" 2>/dev/null || echo gone)" = "$PORTICO_MTIME" ] ||
    replaced=" The binary file was replaced during the run; the process measured is the one built then."
hdr="| row | direct |"
sep="|---|---|"
for n in "${PROXIES[@]}"; do hdr+=" ${LABEL[$n]} |"; sep+="---|"; done
{
    echo "## bench/plain.sh ($MODE): $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${model:-unknown CPU}"
    echo
    echo "Portico $ver_portico at commit $commit$dirty, binary $PORTICO built $PORTICO_BUILT, PORTICO_HEADERS=$PORTICO_HEADERS.$replaced"
    echo "REPS=$REPS interleaved rounds of DUR=${DUR}s cells (target order rotated each round, direct included),"
    echo "medians of the valid rounds; 1 worker per proxy pinned to CPU$PROXY_CPU; wrk -t1 -c50 and the origin (nginx,"
    echo "1 worker, static files) on CPU$LOAD_CPU.$([ ${#SKIPPED[@]} = 0 ] || echo " Skipped: ${SKIPPED[*]}.")"
    [ "$PORTICO_HEADERS" != all ] || echo "PORTICO_HEADERS=all: nginx and HAProxy configured to add the same request fields as Portico and to drop Server and X-Powered-By (bench/lib.sh, peer_fields_*)."
    echo "Cells: median req/s (ratio to direct: median over rounds of target/direct in the same round); **bold** ="
    echo "best proxy; [k/$REPS rounds]: the median is over k rounds (the others invalid or disturbed: see below)."
    awk -F'\t' '$4=="other_pct" {print $5+0}' "$RAW" | sort -n | awk -v x="$OTHER_MAX" '
        {v[NR]=$1; if ($1 > x) d++}
        END {if (!NR) exit; printf "Other processes on the two CPUs during the cells: median %d%%, max %d%% of one CPU;", v[int((NR+1)/2)], v[NR]
             printf " %d of %d cells above OTHER_MAX=%d%% (left out of the medians where the same cell has a clean round; § = no clean round).\n", d, NR, x}'
    echo
    echo "$hdr Portico / best peer | paired, per round |"
    echo "$sep---|---|"
    for row in "${ROWS[@]}"; do
        declare -A M=() B=()
        for n in "${TARGETS[@]}"; do M[$n]=$(med "$row" "$n" rps); B[$n]=$(med "$row" "$n" MBps); done
        best=$(for n in "${PEERLIST[@]}"; do echo "${M[$n]}"; done | grep -v NA | sort -g | tail -1 || true)
        bestp=$(for n in "${PROXIES[@]}"; do echo "${M[$n]}"; done | grep -v NA | sort -g | tail -1 || true)
        line="| $(desc "$row") |"
        for n in "${TARGETS[@]}"; do
            v=${M[$n]}
            if [ "$v" = NA ]; then
                line+=" n/a: $(cellnote "$row" "$n") |"
                continue
            fi
            s=$(fmt "$v")
            [ "$row" != ka100k ] || s+=" · $(fmt "${B[$n]}") MB/s"
            [ "$n" = direct ] || s+=" ($(dratio "$row" "$n"))"
            [ "$n" = direct ] || [ "$v" != "$bestp" ] || s="**$s**"
            [ "$n" = direct ] || ! bound "$row" "$n" || s+=" ‡"
            ! disturbed "$row" "$n" || s+=" §"
            [ "$(nused "$row" "$n")" = "$REPS" ] || s+=" [$(nused "$row" "$n")/$REPS rounds]"
            line+=" $s |"
        done
        line+=" $(ratio "${M[portico]}" "${best:-NA}") | $(paired "$row") |"
        echo "$line"
        unset M B
    done
    echo
    echo "Portico / best peer: Portico's median req/s over the best peer's median. Paired: in each round the"
    echo "targets run one after the other, seconds apart; the column is the median over rounds of Portico's"
    echo "req/s over the best peer's in the same round (rounds where one of those cells was disturbed left"
    echo "out), so a drift of the machine's speed between rounds cancels out."
    echo "Direct is no ceiling on close1k and ka100k: straight to the origin, all the work is on the load CPU"
    echo "(the origin, wrk, and the kernel's loopback TCP work of both ends), while behind a proxy part of it"
    echo "moves to the proxy's CPU: on close1k the origin sees kept-alive connections and the proxy accepts"
    echo "the new ones; on ka100k the kernel's receive work for what the proxy sends runs on the proxy's CPU."
    echo "So a proxy can beat direct there (ratio > 1)."
    echo "‡ not bound by the proxy: the load CPU (wrk + origin) was >= 95% busy while the proxy used < 90%"
    echo "of its CPU. § disturbed: other processes used more than OTHER_MAX% of a CPU in every valid round."
    echo
    echo "Proxy CPU time per request (µs of user+system time of the proxy's processes, all threads, /"
    echo "requests). Cells: µs (best peer's µs / this µs, higher is better; proxy CPU% / load CPU%), then"
    echo "the origin's CPU time per request in the same cells (direct: the origin's alone; load CPU%)."
    echo "Portico polls for a short while after a busy turn (LOOP_SPIN_US), which is counted here."
    echo
    echo "$hdr Portico vs best peer |"
    echo "$sep---|"
    for row in "${ROWS[@]}"; do
        declare -A U=()
        for n in "${PROXIES[@]}"; do U[$n]=$(dec 1 "$(med "$row" "$n" cpu_us_req)"); done
        bestu=$(for n in "${PEERLIST[@]}"; do echo "${U[$n]}"; done | grep -v NA | sort -g | head -1 || true)
        line="| $row | origin $(dec 1 "$(med "$row" direct origin_us_req)") µs (load $(dec 0 "$(med "$row" direct load_pct)")%) |"
        for n in "${PROXIES[@]}"; do
            u=${U[$n]}
            if [ "$u" = NA ]; then line+=" n/a |"; else
                line+=" $u ($(ratio "${bestu:-NA}" "$u"); $(dec 0 "$(med "$row" "$n" cpu_pct)")% / $(dec 0 "$(med "$row" "$n" load_pct)")%);"
                line+=" origin $(dec 1 "$(med "$row" "$n" origin_us_req)") |"
            fi
        done
        line+=" $(ratio "${bestu:-NA}" "${U[portico]}") |"
        echo "$line"
        unset U
    done
    echo
    echo "Checks:"
    echo "- every proxy returned the origin's /1k and /100k byte for byte (cmp) before the rounds."
    echo "- wrk close1k straight to the origin (warm-up, ${WARM}s): $CAL."
    echo "- logs ($OUT/logs/): $(for n in origin "${PROXIES[@]}"; do printf '%s %s; ' "${LABEL[$n]:-$n}" "${LOGSUM[$n]}"; done | sed 's/; $//')."
    for n in "${TARGETS[@]}"; do
        echo "- ${LABEL[$n]}: valid rounds ka1k/ka100k/close1k: $(nvalid ka1k "$n")/$(nvalid ka100k "$n")/$(nvalid close1k "$n") of $REPS"
    done
    if awk -F'\t' '$4=="note" {f=1} END {exit !f}' "$RAW"; then
        echo "- notes (invalid cells):"
        awk -F'\t' '$4=="note" {printf "  - %s %s round %s: %s\n", $1, $2, $3, $5}' "$RAW"
    fi
    if awk -F'\t' -v x="$OTHER_MAX" '$4=="other_pct" && $5+0 > x {f=1} END {exit !f}' "$RAW"; then
        echo "- disturbed cells (other processes above OTHER_MAX=$OTHER_MAX% of a CPU):"
        awk -F'\t' -v x="$OTHER_MAX" '$4=="other_pct" && $5+0 > x {printf "  - %s %s round %s: %s%%\n", $1, $2, $3, $5}' "$RAW"
    fi
    echo
    echo "Commands (wrk on CPU$LOAD_CPU; PORT = $BP direct, $(for n in "${PROXIES[@]}"; do printf '%s %s, ' "${PORT[$n]}" "${LABEL[$n]}"; done | sed 's/, $//')):"
    echo
    echo '```'
    for row in "${ROWS[@]}"; do
        row_args "$row"
        echo "taskset -c $LOAD_CPU ${WRK[*]} -d${DUR}s ${ARGS[*]} http://127.0.0.1:PORT/$FILE" |
            sed -e "s/Connection: close/'Connection: close'/" -e "s|$TMP|\$TMP|g" -e 's/  */ /g'
    done
    for n in "${PROXIES[@]}"; do echo "${CMDLINE[$n]//$TMP/\$TMP}"; done
    echo "origin: taskset -c $LOAD_CPU$(printf ' %q' "${ORIGIN_CMD[@]}" | sed "s|$TMP|\$TMP|g")"
    echo '```'
    echo
    echo "Configurations and the wrk script: $OUT/conf/; every wrk output: $OUT/cells/; raw numbers: $RAW."
    echo
    echo "versions: nginx $ver_nginx, HAProxy ${ver_haproxy:-n/a}, h2o ${ver_h2o:-n/a}, wrk $ver_wrk, Portico $ver_portico ($commit), kernel $(uname -r)"
    echo "total run time: $(($(date +%s) - T0)) s"
} | tee "$OUT/results.md"
log "results: $OUT/results.md (raw numbers: $RAW)"
