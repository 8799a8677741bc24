#!/usr/bin/env bash
# TLS termination benchmark (issue 4): Portico beside nginx and HAProxy, in one run, all three
# with the same ECDSA P-256 self-signed certificate, one worker each pinned to the same CPU, in
# front of the same origin (nginx serving a static 1 KiB file /1k on the load CPU).
#
# Rows (each cell run for every proxy, interleaved in REPS rounds with the proxy order rotated
# each round; medians reported):
#   hs  TLS handshakes per second, one full handshake per request:
#       h2load --h1 -c50 -n HS_N -H 'Connection: close', with a preload shim (see below)
#   h2  HTTP/2 over TLS, many streams: h2load -c10 -m100 -n H2_N (ALPN h2)
#   h1  HTTP/1.1 over TLS, keep-alive: h2load --h1 -c50 -n H1_N
# All on /1k, h2load -t1 pinned to LOAD_CPU. Every cell is checked: h2load's request count,
# 0 failed / errored, all 2xx, the negotiated application protocol, and for the hs row the
# number of full and resumed handshakes the client counted.
#
# Handshake client. The candidates, measured on this machine against nginx logging
# $ssl_session_reused (the self-check below repeats that test in every run):
#   - h2load --h1 -H 'Connection: close' reconnects after every response, but keeps its SSL
#     object across reconnects (SSL_shutdown returned 1, so no SSL_free), so every connection
#     after a client's first one RESUMES the session: 4980 of 5000 were resumed.
#   - wrk -H 'Connection: close' calls SSL_clear() and reconnects with the same SSL object, so it
#     resumes too (2318 of 2338 resumed).
#   - ab (no -k) and `openssl s_time -new` make full handshakes, but ab is slower than h2load
#     (1,081/s at -c50 where h2load did 1,500-1,600) and s_time runs one connection at a time.
#   - hey -disable-keepalive (Go, Debian package, not installed by default) makes full
#     handshakes too, at about 490 us of client CPU each against h2load's 560 us: not enough
#     of a gain to add a dependency and lose the per-cell count below.
#   - chosen: h2load with tls-noresume.so, a small LD_PRELOAD shim built here with cc. Before
#     every SSL_set_fd() (one per new connection) it calls SSL_set_session(ssl, NULL), so the
#     client never offers a session or ticket; it also counts the handshakes that completed and
#     how many were resumed (SSL_session_reused), written at exit. Each hs cell must show HS_N
#     full handshakes and 0 resumed, or it is marked invalid.
#   Limit: with OpenSSL 3.0 a full handshake costs the client more CPU than the proxy
#   (h2load ~560 us, the proxies 380-540 us), so with one load CPU the hs row is client-bound
#   (load CPU ~99% busy, proxies at 60-75%): its req/s ratios sit near 1. The proxy's own CPU
#   time per handshake, reported beside it, is what compares the proxies on that row.
# Direct-to-origin: no column. The origin speaks plain HTTP on the load CPU; a TLS "direct"
# figure would put the TLS server on the CPU the client uses, and a plain one measures other
# work. The proxy's CPU time per request and the load CPU's busy share are reported instead,
# so a client-bound cell (proxy well under 100%) is visible.
#
# Usage: bench/tls.sh [--quick]     default about 4 minutes, --quick about 20 seconds
# Environment: REPS HS_N H2_N H1_N HS_C H2_C H2_M H1_C CELL_TIMEOUT PROXY_CPU(1) LOAD_CPU(0)
#   PORTICO (binary, default build/portico), PORTICO_HEADERS (on: as shipped; off: no forwarding
#   fields added, the same work as the peers' configurations: see conf_portico; all: as shipped,
#   and nginx and HAProxy configured to add the same fields: peer_fields_* in bench/lib.sh), TLS13_CIPHERS (what h2load offers; default
#   TLS_AES_128_GCM_SHA256 so every proxy runs the same cipher; empty = h2load's default list),
#   RESULTS_DIR (default bench/results/<UTC time>-tls).
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

MODE=default
for a in "$@"; do
    case "$a" in
        --quick) MODE=quick ;;
        -h | --help) awk 'NR > 1 && /^set -euo/ {exit} NR > 1' "$0"; exit 0 ;;
        *) echo "tls.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done
if [ "$MODE" = quick ]; then
    : "${REPS:=1}" "${HS_N:=2000}" "${H2_N:=20000}" "${H1_N:=10000}" "${CELL_TIMEOUT:=30}"
else
    : "${REPS:=7}" "${HS_N:=4000}" "${H2_N:=60000}" "${H1_N:=40000}" "${CELL_TIMEOUT:=90}"
fi
: "${HS_C:=50}" "${H2_C:=10}" "${H2_M:=100}" "${H1_C:=50}" "${OTHER_MAX:=10}"
TLS13_CIPHERS=${TLS13_CIPHERS-TLS_AES_128_GCM_SHA256}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
top=$(cd "$here/.." && pwd)
PORTICO=${PORTICO:-$top/build/portico}
PORTICO_HEADERS=${PORTICO_HEADERS:-on}
case $PORTICO_HEADERS in on | off | all) ;; *) echo "tls.sh: PORTICO_HEADERS must be on, off or all" >&2; exit 2 ;; esac
[ -x "$PORTICO" ] || make -C "$top" build
ver_portico=$("$PORTICO" --version 2>/dev/null | awk '{print $2}' || true)
PORTICO_BUILT=$(date -u -r "$PORTICO" +%Y-%m-%dT%H:%MZ) # another build may replace it mid-run
OUT=${RESULTS_DIR:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)-tls}
mkdir -p "$OUT/cells" "$OUT/conf"
RAW=$OUT/raw.tsv
: >"$RAW"
T0=$(date +%s)

for c in nginx haproxy h2load openssl curl cc taskset ss timeout; do
    command -v "$c" >/dev/null || die "$c is required"
done

BP=19480 # origin (plain HTTP)
VP=19489 # origin's TLS verification server (self-check only, logs $ssl_session_reused)
PEERS=(nginx haproxy portico)
declare -A PORT=([nginx]=19481 [haproxy]=19482 [portico]=19483)
declare -A LABEL=([nginx]=nginx [haproxy]=HAProxy [portico]=Portico)

# ---------------------------------------------------------------- processes and cleanup
TMP=$(mktemp -d /tmp/portico-tls.XXXXXX)
chmod 755 "$TMP"
STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && stop_pid "$p"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || true
for p in $BP $VP "${PORT[@]}"; do port_busy "$p" && die "port $p already in use"; done
wait_url() { # url seconds
    for _ in $(seq $(($2 * 10))); do
        curl -ksf -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- content, certificate, shim
mkdir -p "$TMP/www"
head -c 768 /dev/urandom | base64 -w0 >"$TMP/www/1k" # exactly 1024 bytes, no SIGPIPE under pipefail
chmod -R a+rX "$TMP/www"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/combined.pem" # HAProxy wants both in one file
chmod 644 "$TMP"/*.pem

# The handshake client's shim (see the header). Loaded only into h2load; harmless elsewhere.
cat >"$TMP/tls-noresume.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
typedef struct ssl_st SSL;
static int (*real_set_fd)(SSL *, int);
static int (*real_do_handshake)(SSL *);
static int (*set_session)(SSL *, void *);
static int (*session_reused)(const SSL *);
static unsigned long n_conns, n_full, n_resumed;
static int force_full = 1;
__attribute__((constructor)) static void init(void)
{
    real_set_fd = (int (*)(SSL *, int))dlsym(RTLD_NEXT, "SSL_set_fd");
    real_do_handshake = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_do_handshake");
    set_session = (int (*)(SSL *, void *))dlsym(RTLD_NEXT, "SSL_set_session");
    session_reused = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_session_reused");
    const char *e = getenv("TLS_FULL_HANDSHAKES");
    if (e && e[0] == '0') force_full = 0;
}
/* one call per new connection: forget the previous connection's session first */
int SSL_set_fd(SSL *s, int fd)
{
    n_conns++;
    if (force_full) set_session(s, NULL);
    return real_set_fd(s, fd);
}
int SSL_do_handshake(SSL *s)
{
    int r = real_do_handshake(s);
    if (r == 1) {
        if (session_reused(s)) n_resumed++;
        else n_full++;
    }
    return r;
}
__attribute__((destructor)) static void fini(void)
{
    const char *p = getenv("TLS_HS_COUNT");
    FILE *f;
    if (!p || !real_set_fd || !(f = fopen(p, "w"))) return;
    fprintf(f, "%lu %lu %lu\n", n_conns, n_full, n_resumed);
    fclose(f);
}
EOF
SHIM=$TMP/tls-noresume.so
cc -O2 -shared -fPIC -o "$SHIM" "$TMP/tls-noresume.c" -ldl || die "cannot build the handshake shim"
cp "$TMP/tls-noresume.c" "$OUT/conf/"

# ---------------------------------------------------------------- origin (same setup as run-peers.sh)
mkdir -p "$TMP/origin"
cat >"$TMP/origin/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 65536;
pid $TMP/origin/nginx.pid;
error_log $TMP/origin/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=64;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  client_body_temp_path $TMP/origin/t_body; proxy_temp_path $TMP/origin/t_proxy;
  fastcgi_temp_path $TMP/origin/t_fcgi; uwsgi_temp_path $TMP/origin/t_uwsgi; scgi_temp_path $TMP/origin/t_scgi;
  log_format hs '\$connection \$ssl_session_reused \$ssl_protocol';
  server { listen 127.0.0.1:$BP backlog=4096; root $TMP/www; }
  # self-check of the handshake client only (not measured): a TLS server that logs resumption
  server {
    listen 127.0.0.1:$VP ssl;
    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:V:1m; ssl_session_tickets on;
    access_log $TMP/origin/verify.log hs;
    root $TMP/www;
  }
}
EOF
taskset -c "$LOAD_CPU" nginx -p "$TMP/origin/" -e "$TMP/origin/error.log" -c "$TMP/origin/nginx.conf" \
    -g 'daemon off;' >"$TMP/origin/stdout.log" 2>&1 &
ORIGIN=$!
STARTED+=("$ORIGIN")
wait_url "http://127.0.0.1:$BP/1k" 10 || die "origin did not start"
wait_url "https://127.0.0.1:$VP/1k" 10 || die "origin's verification server did not start"

# ---------------------------------------------------------------- proxies
NOFILE=65536 MAXCONN=16384 # the peers' configurations (bench/lib.sh)
conf_nginx() {
    peer_conf_nginx "$1" "    listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;" \
        "$([ "$PORTICO_HEADERS" != all ] || peer_fields_nginx_http)" \
        "$([ "$PORTICO_HEADERS" != all ] || peer_fields_nginx_location https)"
}
conf_haproxy() {
    peer_conf_haproxy "$1" \
        "  bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/combined.pem alpn h2,http/1.1 backlog 4096" \
        "  ssl-default-bind-options ssl-min-ver TLSv1.2" \
        "$([ "$PORTICO_HEADERS" != all ] || peer_fields_haproxy https)"
}
# PORTICO_HEADERS=off: Portico adds none of its request fields (X-Forwarded-*, Forwarded, Via,
# X-Request-Id), so the origin gets what the peers' configurations send it: the same work. The
# default (on) measures Portico as shipped; the origin, on the load CPU, pays for the extra fields.
conf_portico() {
    portico_conf_bare "$1" "  - address: 127.0.0.1:${PORT[portico]}
    tls:
      certificates:
        - {cert: $TMP/cert.pem, key: $TMP/key.pem}"
    cp "$1/portico.yaml" "$OUT/conf/portico.yaml"
}
proxy_cmd() { # name dir -> CMD array
    case $1 in
        nginx) CMD=(nginx -p "$2/" -e "$2/error.log" -c "$2/nginx.conf" -g "daemon off;") ;;
        haproxy) CMD=(haproxy -db -f "$2/haproxy.cfg") ;;
        portico)
            if [ "$PORTICO_HEADERS" = off ]; then
                conf_portico "$2"
                CMD=("$PORTICO" -c "$2/portico.yaml")
            else
                CMD=("$PORTICO" --listen-tls "127.0.0.1:${PORT[portico]}" --cert "$TMP/cert.pem"
                    --key "$TMP/key.pem" --upstream "http://127.0.0.1:$BP" --workers 1 --access-log off)
            fi
            ;;
    esac
}
declare -A PID CMDLINE
for n in "${PEERS[@]}"; do
    d=$TMP/$n
    mkdir -p "$d"
    case $n in nginx | haproxy) "conf_$n" "$d" && cp "$d"/*.c* "$OUT/conf/" ;; esac
    proxy_cmd "$n" "$d"
    CMDLINE[$n]="taskset -c $PROXY_CPU$(printf ' %q' "${CMD[@]}")"
    taskset -c "$PROXY_CPU" "${CMD[@]}" >"$d/stdout.log" 2>&1 &
    PID[$n]=$!
    STARTED+=("${PID[$n]}")
    if ! wait_url "https://127.0.0.1:${PORT[$n]}/1k" 20; then
        tail -5 "$d/stdout.log" "$d"/error.log 2>/dev/null >&2 || true
        die "$n did not come up"
    fi
    [ "$(curl -ks "https://127.0.0.1:${PORT[$n]}/1k" | cmp - "$TMP/www/1k" && echo same)" = same ] ||
        die "$n does not return the origin's /1k"
done
log "mode=$MODE reps=$REPS; nginx, HAProxy, Portico up on CPU$PROXY_CPU; load on CPU$LOAD_CPU"

CIPH=()
[ -n "$TLS13_CIPHERS" ] && CIPH=(--tls13-ciphers="$TLS13_CIPHERS")
H2LOAD=(h2load -t1 "${CIPH[@]}")

# h2load_out <text> <field>: one value from h2load's output
field() {
    case $2 in
        rps) awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$1" ;;
        succeeded) awk '/^requests:/ {print $8}' <<<"$1" ;;
        failed) awk '/^requests:/ {print $10}' <<<"$1" ;;
        errored) awk '/^requests:/ {print $12}' <<<"$1" ;;
        timeout) awk '/^requests:/ {print $14}' <<<"$1" ;;
        s2xx) awk '/^status codes:/ {print $3}' <<<"$1" ;;
        alpn) awk -F': ' '/^Application protocol/ {print $2}' <<<"$1" ;;
        tls) awk -F': ' '/^TLS Protocol/ {print $2}' <<<"$1" ;;
        cipher) awk -F': ' '/^Cipher/ {print $2}' <<<"$1" ;;
        group) awk -F': ' '/^Server Temp Key/ {print $2}' <<<"$1" ;;
    esac
}

# ---------------------------------------------------------------- self-check of the handshake client
# Against the origin's logging TLS server: h2load with the shim counting only, then forcing full
# handshakes. The server's log ($ssl_session_reused: "r" or ".") must agree with the client.
selfcheck() { # force(0/1) -> "requests server_full server_resumed client_full client_resumed"
    local before after out n=500
    before=$(wc -l <"$TMP/origin/verify.log" 2>/dev/null || echo 0)
    out=$(timeout 60 taskset -c "$LOAD_CPU" env LD_PRELOAD="$SHIM" TLS_HS_COUNT="$TMP/self.count" \
        TLS_FULL_HANDSHAKES="$1" "${H2LOAD[@]}" --h1 -c 10 -n $n -H 'Connection: close' \
        "https://127.0.0.1:$VP/1k" 2>&1) || true
    sleep 0.3
    after=$(tail -n +"$((before + 1))" "$TMP/origin/verify.log")
    read -r _ cf cr <"$TMP/self.count" || { cf=NA; cr=NA; }
    echo "$(field "$out" succeeded) $(awk '$2=="." {n++} END {print n+0}' <<<"$after") $(awk '$2=="r" {n++} END {print n+0}' <<<"$after") $cf $cr"
}
read -r sc0_n sc0_sf sc0_sr sc0_cf sc0_cr <<<"$(selfcheck 0)"
read -r sc1_n sc1_sf sc1_sr sc1_cf sc1_cr <<<"$(selfcheck 1)"
log "self-check, h2load without the shim: server saw $sc0_sf full / $sc0_sr resumed of $sc0_n requests"
log "self-check, h2load with the shim:    server saw $sc1_sf full / $sc1_sr resumed of $sc1_n requests (client counted $sc1_cf / $sc1_cr)"
[ "$sc1_sr" = 0 ] && [ "$sc1_sf" = "$sc1_n" ] && [ "$sc1_cf" = "$sc1_n" ] && [ "$sc1_cr" = 0 ] ||
    die "the handshake client does not make only full handshakes; hs row would be wrong"

# ---------------------------------------------------------------- ALPN probe and warm-up
declare -A H2OK
for n in "${PEERS[@]}"; do
    u="https://127.0.0.1:${PORT[$n]}/1k"
    out=$(timeout 20 taskset -c "$LOAD_CPU" "${H2LOAD[@]}" -c 1 -n 1 "$u" 2>&1) || true
    a=$(field "$out" alpn)
    record probe "$n" 0 alpn "${a:-NA}"
    if [ "$a" = h2 ]; then H2OK[$n]=1; else H2OK[$n]=0; log "$n: ALPN gave '${a:-none}', not h2: h2 row skipped for it"; fi
    timeout 30 taskset -c "$LOAD_CPU" "${H2LOAD[@]}" --h1 -c 10 -n 2000 "$u" >/dev/null 2>&1 || true
    [ "${H2OK[$n]}" = 0 ] || timeout 30 taskset -c "$LOAD_CPU" "${H2LOAD[@]}" -c 10 -m 10 -n 2000 "$u" >/dev/null 2>&1 || true
done

# ---------------------------------------------------------------- one cell
row_args() { # row -> ARGS, N
    case $1 in
        hs) ARGS=(--h1 -c "$HS_C" -n "$HS_N" -H 'Connection: close'); N=$HS_N ;;
        h2) ARGS=(-c "$H2_C" -m "$H2_M" -n "$H2_N"); N=$H2_N ;;
        h1) ARGS=(--h1 -c "$H1_C" -n "$H1_N"); N=$H1_N ;;
    esac
}
cell() { # row target rep
    local row=$1 tg=$2 rep=$3 u out c0 c1 b0 b1 t0 t1 k0 k1 q0 q1 o0 o1 h0 h1 rc=0 valid=1 note="" pre=() a conns full res
    u="https://127.0.0.1:${PORT[$tg]}/1k"
    row_args "$row"
    if [ "$row" = h2 ] && [ "${H2OK[$tg]}" = 0 ]; then
        record "$row" "$tg" "$rep" note "h1 fallback (ALPN $(awk -F'\t' -v t="$tg" '$1=="probe"&&$2==t&&$4=="alpn"{print $5}' "$RAW"))"
        return
    fi
    [ "$row" = hs ] && pre=(env LD_PRELOAD="$SHIM" TLS_HS_COUNT="$TMP/hs.count") && rm -f "$TMP/hs.count"
    snapshot "${PID[$tg]}"
    read -r c0 b0 t0 k0 q0 o0 h0 <<<"$SNAP"
    out=$(timeout --foreground "$CELL_TIMEOUT" taskset -c "$LOAD_CPU" "${pre[@]}" "${H2LOAD[@]}" "${ARGS[@]}" "$u" 2>&1) || rc=$?
    snapshot "${PID[$tg]}"
    read -r c1 b1 t1 k1 q1 o1 h1 <<<"$SNAP"
    printf '%s\n' "$out" >"$OUT/cells/$row-$tg-$rep.txt"
    local rps succ fail err s2 dur other
    rps=$(field "$out" rps); succ=$(field "$out" succeeded); fail=$(field "$out" failed)
    err=$(field "$out" errored); s2=$(field "$out" s2xx); a=$(field "$out" alpn)
    dur=$(awk '/^finished in/ {v=$3; if (v ~ /ms,$/) {sub("ms,", "", v); v/=1000} else sub("s,", "", v); print v}' <<<"$out")
    [ "$rc" = 0 ] || { valid=0; note+="exit $rc (timeout ${CELL_TIMEOUT}s?); "; }
    [ "${succ:-0}" = "$N" ] || { valid=0; note+="${succ:-0}/$N succeeded; "; }
    [ "${fail:-x}" = 0 ] && [ "${err:-x}" = 0 ] || { valid=0; note+="failed ${fail:-?} errored ${err:-?}; "; }
    [ "${s2:-0}" = "$N" ] || { valid=0; note+="${s2:-0} 2xx; "; }
    case $row in
        h2) [ "$a" = h2 ] || { valid=0; note+="h1 fallback (ALPN ${a:-none}); "; } ;;
        *) [ "$a" = http/1.1 ] || { valid=0; note+="ALPN ${a:-none}; "; } ;;
    esac
    if [ "$row" = hs ]; then
        read -r conns full res <"$TMP/hs.count" 2>/dev/null || { conns=NA; full=NA; res=NA; }
        record "$row" "$tg" "$rep" hs_conns "$conns"
        record "$row" "$tg" "$rep" hs_full "$full"
        record "$row" "$tg" "$rep" hs_resumed "$res"
        [ "$full" = "$N" ] && [ "$res" = 0 ] || { valid=0; note+="handshakes full $full resumed $res; "; }
    fi
    record "$row" "$tg" "$rep" rps "${rps:-NA}"
    record "$row" "$tg" "$rep" valid "$valid"
    record "$row" "$tg" "$rep" alpn "${a:-NA}"
    record "$row" "$tg" "$rep" cipher "$(field "$out" tls) $(field "$out" cipher) $(field "$out" group)"
    [ -n "$note" ] && record "$row" "$tg" "$rep" note "$note"
    if [ -n "$dur" ] && [ "${succ:-0}" -gt 0 ]; then
        record "$row" "$tg" "$rep" cpu_us_req "$(awk -v c=$((c1 - c0)) -v h="$HZ" -v s="$succ" 'BEGIN {printf "%.1f", 1e6 * c / h / s}')"
        record "$row" "$tg" "$rep" cpu_pct "$(awk -v c=$((c1 - c0)) -v h="$HZ" -v d="$dur" 'BEGIN {printf "%.0f", 100 * c / h / d}')"
        record "$row" "$tg" "$rep" load_pct "$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')"
        record "$row" "$tg" "$rep" client_us_req "$(awk -v c=$((h1 - h0)) -v h="$HZ" -v s="$succ" 'BEGIN {printf "%.1f", 1e6 * c / h / s}')"
        # task time on the two CPUs not spent by the proxy, the origin or h2load: other work on
        # the machine during the cell, as a share of one CPU (a few % is measurement slack)
        other=$(awk -v a=$((k1 - k0 + q1 - q0)) -v b=$((c1 - c0 + o1 - o0 + h1 - h0)) -v t=$((t1 - t0)) \
            'BEGIN {v = t ? 100 * (a - b) / t : 0; printf "%.0f", v < 0 ? 0 : v}')
        record "$row" "$tg" "$rep" other_pct "$other"
        [ "$other" -le "$OTHER_MAX" ] || log "$row $tg round $rep: other processes used ${other}% of a CPU"
    fi
    [ "$valid" = 1 ] || log "$row $tg round $rep: INVALID: $note"
}

# ---------------------------------------------------------------- rounds
ROWS=(hs h2 h1)
for rep in $(seq "$REPS"); do
    # rotate the proxy order each round so no proxy always runs first
    k=$(((rep - 1) % ${#PEERS[@]}))
    order=("${PEERS[@]:k}" "${PEERS[@]:0:k}")
    for row in "${ROWS[@]}"; do
        for n in "${order[@]}"; do cell "$row" "$n" "$rep"; done
    done
    log "round $rep/$REPS done (order: ${order[*]})"
done

# ---------------------------------------------------------------- report
med() {
    local use
    use=$(rounds "$1" "$2" | tr '\n' ' ')
    awk -F'\t' -v r="$1" -v t="$2" -v m="$3" -v use=" $use" '
        $1==r && $2==t && $4==m && index(use, " " $3 " ") && $5!="NA" {print $5}' "$RAW" |
        sort -g | awk '{a[NR]=$1} END {if (!NR) print "NA"; else if (NR%2) print a[(NR+1)/2]; else printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}'
}
firstv() { awk -F'\t' -v r="$1" -v t="$2" -v m="$3" '$1==r && $2==t && $4==m {print $5; exit}' "$RAW"; }
# paired <row>: Portico / best peer within each round (cells a few seconds apart, so a change in
# the machine's speed between rounds cancels out), as "median (min-max, k/n rounds >= 1.00)"
paired() {
    awk -F'\t' -v r="$1" '
        $1==r && $4=="valid" {ok[$2 SUBSEP $3]=$5; reps[$3]=1}
        $1==r && $4=="rps" {x[$2 SUBSEP $3]=$5}
        END {
            for (k in reps) {
                p = ok["portico", k] == 1 ? x["portico", k] : ""
                b = ""
                if (ok["nginx", k] == 1) b = x["nginx", k]
                if (ok["haproxy", k] == 1 && (b == "" || x["haproxy", k] + 0 > b + 0)) b = x["haproxy", k]
                if (p != "" && p != "NA" && b != "" && b != "NA" && b > 0) print p / b
            }
        }' "$RAW" | sort -g | awk '{a[NR]=$1; if ($1 >= 0.995) k++}
        END {if (!NR) {print "NA"; exit}
             m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
             printf "%.2f (%.2f-%.2f, %d/%d rounds >= 1.00)\n", m, a[1], a[NR], k, NR}'
}
desc() {
    case $1 in
        hs) echo "TLS handshakes/s, full handshake per request (h2load --h1 -c$HS_C, Connection: close)" ;;
        h2) echo "HTTP/2 over TLS req/s (h2load -c$H2_C -m$H2_M)" ;;
        h1) echo "HTTP/1.1 over TLS keep-alive req/s (h2load --h1 -c$H1_C)" ;;
    esac
}
cellnote() { # a cell with no valid round: why
    local n
    n=$(awk -F'\t' -v r="$1" -v t="$2" '$1==r && $2==t && $4=="note" {print $5; exit}' "$RAW")
    echo "${n:-no valid round}" | sed 's/; *$//'
}
ver_nginx=$(nginx -v 2>&1 | sed 's/.*\///')
ver_haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}')

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" --no-optional-locks status --porcelain -- src 2>/dev/null || true)
[ -z "$dirty" ] || dirty=" (src/ has uncommitted changes)"
{
    echo "## bench/tls.sh ($MODE): $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"
    echo
    echo "Portico $ver_portico at commit $commit$dirty, binary $PORTICO built $PORTICO_BUILT, PORTICO_HEADERS=$PORTICO_HEADERS."
    [ "$PORTICO_HEADERS" != all ] || echo "PORTICO_HEADERS=all: nginx and HAProxy configured to add the same request fields as Portico and to drop Server and X-Powered-By (bench/lib.sh, peer_fields_*)."
    echo "REPS=$REPS interleaved rounds (proxy order rotated), medians of the valid rounds; 1 worker per proxy"
    echo "pinned to CPU$PROXY_CPU; h2load -t1 and the origin on CPU$LOAD_CPU; /1k through the proxy; ECDSA P-256"
    echo "self-signed certificate shared by all; client offers TLS 1.3 ciphers: ${TLS13_CIPHERS:-h2load default}."
    echo "Cells: req/s (ratio to the best of nginx and HAProxy); **bold** = best of the three; [k/$REPS rounds]:"
    echo "the median is over k rounds (the others were invalid, or disturbed: see below)."
    awk -F'\t' '$4=="other_pct" {print $5+0}' "$RAW" | sort -n | awk -v x="$OTHER_MAX" '
        {v[NR]=$1; if ($1 > x) d++}
        END {if (!NR) exit; printf "Other processes on the two CPUs during the cells: median %d%%, max %d%% of one CPU;", v[int((NR+1)/2)], v[NR]
             printf " %d of %d cells above OTHER_MAX=%d%% (left out of the medians where the same cell has a clean round; § = no clean round).\n", d, NR, x}'
    echo
    echo "| row | nginx | HAProxy | Portico | Portico / best peer | paired, per round |"
    echo "|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do
        declare -A M=()
        for n in "${PEERS[@]}"; do M[$n]=$(med "$row" "$n" rps); done
        best=$(printf '%s\n' "${M[nginx]}" "${M[haproxy]}" | grep -v NA | sort -g | tail -1 || true)
        top3=$(printf '%s\n' "${M[@]}" | grep -v NA | sort -g | tail -1 || true)
        line="| $(desc "$row") |"
        for n in "${PEERS[@]}"; do
            v=${M[$n]}
            if [ "$v" = NA ]; then
                line+=" n/a: $(cellnote "$row" "$n") |"
            else
                s="$(fmt "$v") ($(ratio "$v" "${best:-NA}"))"
                [ "$v" = "$top3" ] && s="**$s**"
                bound "$row" "$n" && s+=" ‡"
                disturbed "$row" "$n" && s+=" §"
                [ "$(nused "$row" "$n")" = "$REPS" ] || s+=" [$(nused "$row" "$n")/$REPS rounds]"
                line+=" $s |"
            fi
        done
        line+=" $(ratio "${M[portico]}" "${best:-NA}") | $(paired "$row") |"
        echo "$line"
        unset M
    done
    echo
    echo "Paired: in each round the three proxies run one after the other, seconds apart; the column is the"
    echo "median over rounds of Portico's req/s over the best peer's in the same round. This VM's speed"
    echo "drifts by up to a third over minutes (openssl speed on one CPU: 3.1 to 4.5 GB/s AES-128-GCM),"
    echo "so per-round ratios are steadier than ratios of medians taken over different minutes."
    echo
    echo "‡ not bound by the proxy: the load CPU (h2load + origin) was >= 95% busy while the proxy used"
    echo "< 90% of its CPU, so this req/s is mostly the client's ceiling; the table below compares the"
    echo "proxies' own cost for such cells. § disturbed: other processes used more than OTHER_MAX% of a"
    echo "CPU in every valid round of the cell (throughput then drops; CPU time per request much less)."
    echo
    echo "Proxy CPU time per request (µs of user+system time, all threads, / successful requests; for the"
    echo "hs row per full handshake). Cells: µs (best peer's µs / this µs, higher is better; proxy CPU% /"
    echo "load CPU%). 1e6 / µs is what one core would sustain if the proxy were the bottleneck. A proxy"
    echo "that is not saturated batches less per wake-up, and Portico polls for 50 µs after a busy turn"
    echo "(LOOP_SPIN_US), which is counted here: this table is conservative for Portico."
    echo
    echo "| row | nginx | HAProxy | Portico | Portico vs best peer |"
    echo "|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do
        declare -A U=()
        for n in "${PEERS[@]}"; do U[$n]=$(med "$row" "$n" cpu_us_req); done
        bestu=$(printf '%s\n' "${U[nginx]}" "${U[haproxy]}" | grep -v NA | sort -g | head -1 || true)
        line="| $row |"
        for n in "${PEERS[@]}"; do
            u=${U[$n]}
            if [ "$u" = NA ]; then line+=" n/a |"; else
                line+=" $u ($(ratio "${bestu:-NA}" "$u"); $(med "$row" "$n" cpu_pct)% / $(med "$row" "$n" load_pct)%) |"
            fi
        done
        line+=" $(ratio "${bestu:-NA}" "${U[portico]}") |"
        echo "$line"
        unset U
    done
    echo
    echo "Checks:"
    echo "- handshake client self-check (origin's logging TLS server, 500 requests, -c10, Connection: close):"
    echo "  h2load alone: server saw $sc0_sf full + $sc0_sr resumed handshakes (client counted $sc0_cf + $sc0_cr);"
    echo "  h2load + tls-noresume.so: server saw $sc1_sf full + $sc1_sr resumed (client counted $sc1_cf + $sc1_cr)."
    for n in "${PEERS[@]}"; do
        f=$(awk -F'\t' -v t="$n" '$1=="hs" && $2==t && $4=="hs_full" && $5!="NA" {s+=$5} END {print s+0}' "$RAW")
        r=$(awk -F'\t' -v t="$n" '$1=="hs" && $2==t && $4=="hs_resumed" && $5!="NA" {s+=$5} END {print s+0}' "$RAW")
        echo "- ${LABEL[$n]}: hs row $f full / $r resumed handshakes counted by the client over $REPS rounds;" \
            "ALPN pick from h2,http/1.1: $(firstv probe "$n" alpn); negotiated (h1 row): $(firstv h1 "$n" cipher);" \
            "valid rounds hs/h2/h1: $(nvalid hs "$n")/$(nvalid h2 "$n")/$(nvalid h1 "$n")"
    done
    if awk -F'\t' '$4=="note" {f=1} END {exit !f}' "$RAW"; then
        echo "- notes:"
        awk -F'\t' '$4=="note" {printf "  - %s %s round %s: %s\n", $1, $2, $3, $5}' "$RAW"
    fi
    echo
    echo "Commands (h2load on CPU$LOAD_CPU; PORT = 19481 nginx, 19482 HAProxy, 19483 Portico):"
    echo
    echo '```'
    for row in "${ROWS[@]}"; do
        row_args "$row"
        pfx=""
        [ "$row" = hs ] && pfx="LD_PRELOAD=tls-noresume.so "
        echo "$pfx${H2LOAD[*]} ${ARGS[*]} https://127.0.0.1:PORT/1k" | sed "s/Connection: close/'Connection: close'/"
    done
    for n in "${PEERS[@]}"; do echo "${CMDLINE[$n]//$TMP/\$TMP}"; done
    echo "origin: taskset -c $LOAD_CPU nginx (1 worker, static /1k, keep-alive)"
    echo '```'
    echo
    echo "Configurations and the shim's source: $OUT/conf/; every h2load output: $OUT/cells/."
    echo
    echo "versions: nginx $ver_nginx, HAProxy $ver_haproxy, Portico $ver_portico ($commit), h2load $(h2load --version | awk '{print $2}')," \
        "$(openssl version | awk '{print $1, $2}'), kernel $(uname -r)"
    echo "libssl: $(for b in "$(command -v nginx)" "$(command -v haproxy)" "$PORTICO" "$(command -v h2load)"; do
        printf '%s -> %s; ' "${b##*/}" "$(readlink -f "$(ldd "$b" 2>/dev/null | awk '/libssl/ {print $3}')")"; done)"
    echo "total run time: $(($(date +%s) - T0)) s"
} | tee "$OUT/results.md"
log "results: $OUT/results.md (raw numbers: $OUT/raw.tsv)"
