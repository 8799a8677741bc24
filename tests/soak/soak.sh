#!/usr/bin/env bash
# Soak: Portico (the ASan+UBSan build by default) under SECONDS of mixed traffic at once: good
# HTTP/1.1 keep-alive load, HTTP/2 load (h2c and over TLS) and HTTP/1.1 over TLS (h2load);
# uploads whose echo is checked byte count for byte count; WebSocket sessions whose echoes are
# checked (tests/soak/ws.py); requests to origins that misbehave at random (tests/soak/origins.py
# evil); clients that misbehave (tests/soak/bad_clients.py); and a SIGHUP every 5 s. Passes when
# no sanitizer reported anything, the good keep-alive load had no failed or non-2xx request,
# every upload and every WebSocket echo came back whole, Portico still answers at the end and
# SIGTERM stops it with status 0 (leak check included).
# Usage: tests/soak/soak.sh [SECONDS]   (default 60)
# Env: PORTICO_BIN (default build-asan/portico), SOAK_SEED (default 1), SOAK_PORT (first of
#      six consecutive loopback ports, default 19900).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
bin=${PORTICO_BIN:-$root/build-asan/portico}
seed=${SOAK_SEED:-1}
base=${SOAK_PORT:-19900}
py=/usr/bin/python3
here=$root/tests/soak
[ -x "$bin" ] || { echo "soak: $bin not built (make asan)" >&2; exit 1; }
for c in h2load curl ss openssl; do
    command -v $c >/dev/null || { echo "soak: $c is required" >&2; exit 1; }
done
P=$base GOOD=$((base + 1)) EVIL1=$((base + 2)) EVIL2=$((base + 3)) PT=$((base + 4)) WS=$((base + 5))
for port in $P $GOOD $EVIL1 $EVIL2 $PT $WS; do
    if [ -n "$(ss -Hltn "sport = :$port")" ]; then
        echo "soak: port $port in use (SOAK_PORT picks others)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "soak: FAIL: $*" >&2; exit 1; }

"$py" "$here/origins.py" good $GOOD & pids+=($!)
"$py" "$here/origins.py" evil $EVIL1 $((seed * 2)) & pids+=($!)
"$py" "$here/origins.py" evil $EVIL2 $((seed * 2 + 1)) & pids+=($!)
"$py" "$here/ws.py" server $WS & pids+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat > "$tmp/soak.yaml" <<CONF
listen:
  - {address: 127.0.0.1:$P, h2c: true}
  - {address: 127.0.0.1:$PT, tls: {cert: $tmp/cert.pem, key: $tmp/key.pem}}
workers: 2
access_log: $tmp/access.log
timeouts: {client_header: 2s, upstream_header: 5s, upstream_body: 5s, client_keepalive: 5s}
upstreams:
  good:
    servers: [127.0.0.1:$GOOD]
  evil:
    servers: [127.0.0.1:$EVIL1, 127.0.0.1:$EVIL2]
  ws:
    servers: [127.0.0.1:$WS]
routes:
  - match: {path: /ws/}
    proxy: ws
  - match: {path: /evil/}
    proxy: {upstream: evil, strip_prefix: /evil}
  - proxy: good
CONF
for _ in $(seq 50); do
    [ -n "$(ss -Hltn "sport = :$GOOD")" ] && [ -n "$(ss -Hltn "sport = :$EVIL2")" ] &&
        [ -n "$(ss -Hltn "sport = :$WS")" ] && break
    sleep 0.1
done
ASAN_OPTIONS=detect_leaks=1:log_path=$tmp/asan UBSAN_OPTIONS=print_stacktrace=1:log_path=$tmp/ubsan \
    "$bin" -c "$tmp/soak.yaml" > "$tmp/portico.log" 2>&1 &
portico=$!
pids+=($portico)
for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$P/1k" && break
    sleep 0.1
done
echo "soak: ${secs}s on $bin (seed $seed)"

load=()
h2load --h1 -c20 -D "$secs" "http://127.0.0.1:$P/1k" > "$tmp/h1.out" 2>&1 & load+=($!)
"$py" "$here/bad_clients.py" $P "$secs" "$seed" > "$tmp/bad.out" 2>&1 & load+=($!)
"$py" "$here/ws.py" client "ws://127.0.0.1:$P/ws/echo" "$secs" "$seed" > "$tmp/ws.out" 2>&1 & load+=($!)
end=$((SECONDS + secs))
(   # HTTP/2, cleartext and over TLS, in runs of 4 s: h2load opens no new connection after a
    # GOAWAY, and one comes with every SIGHUP
    while [ $SECONDS -lt $end ]; do
        h2load -c4 -m20 -D 4 "http://127.0.0.1:$P/100k" >> "$tmp/h2.out" 2>&1 || true
        h2load -c4 -m20 -D 4 "https://127.0.0.1:$PT/1k" >> "$tmp/h2.out" 2>&1 || true
        h2load --h1 -c4 -D 2 "https://127.0.0.1:$PT/1k" >> "$tmp/h2.out" 2>&1 || true
    done
) & load+=($!)
(   # requests to the misbehaving origins: anything may come back but a hang
    n=0
    while [ $SECONDS -lt $end ]; do
        curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$P/evil/x$n" || true
        n=$((n + 1))
    done
    echo "$n" > "$tmp/evil.count"
) & load+=($!)
(   # uploads: the good origin answers with as many bytes as it read
    n=0 bad=0
    while [ $SECONDS -lt $end ]; do
        size=$(( (RANDOM * 37 + n) % 3000000 ))
        head -c $size /dev/urandom > "$tmp/up.bin"
        flag=(--data-binary "@$tmp/up.bin")
        [ $((n % 3)) = 0 ] && flag+=(-H "Transfer-Encoding: chunked")
        [ $((n % 5)) = 0 ] && flag+=(-H "Expect: 100-continue")
        got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 30 \
            "${flag[@]}" "http://127.0.0.1:$P/up$n" || echo "000 0")
        [ "$got" = "200 $size" ] || { bad=$((bad + 1)); echo "upload $n of $size: $got" >> "$tmp/up.err"; }
        n=$((n + 1))
    done
    echo "$n $bad" > "$tmp/up.count"
) & load+=($!)
(   # SIGHUP every 5 s (HTTP/2 connections get a graceful GOAWAY each time)
    while [ $SECONDS -lt $end ]; do
        sleep 5
        kill -HUP $portico 2>/dev/null || true
    done
) & load+=($!)
for p in "${load[@]}"; do wait "$p" || true; done

kill -0 $portico 2>/dev/null || fail "Portico died; the end of its log:
$(tail -20 "$tmp/portico.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P/1k" || true)
[ "$code" = 200 ] || fail "GET /1k after the soak answered $code"
kill -TERM $portico
status=0
wait $portico || status=$?

summary() { grep -E '^requests:' "$1" | sed 's/^requests: *//'; }
echo "soak: h1 keep-alive /1k: $(summary "$tmp/h1.out")"
echo "soak: HTTP/2 (h2c /100k, TLS /1k; a GOAWAY every 5 s) and HTTP/1.1 over TLS: $(awk \
    '/^requests:/ {n++; t += $2; ok += $8; f += $10} END {printf "%d runs, %d requests, %d succeeded, %d failed", n, t, ok, f}' \
    "$tmp/h2.out")"
echo "soak: misbehaving origins: $(cat "$tmp/evil.count") requests; $(cat "$tmp/bad.out")"
read -r ups upbad < "$tmp/up.count"
echo "soak: uploads: $ups, $upbad not echoed whole"
echo "soak: $(tail -1 "$tmp/ws.out")"
echo "soak: access log lines: $(wc -l < "$tmp/access.log")"
if ls "$tmp"/asan.* "$tmp"/ubsan.* >/dev/null 2>&1; then
    head -60 "$tmp"/asan.* "$tmp"/ubsan.* 2>/dev/null >&2
    fail "sanitizer reports above"
fi
[ $status = 0 ] || fail "Portico exited with status $status after SIGTERM"
read -r _ _ _ h1ok h1failed h1err _ < <(grep -E '^requests:' "$tmp/h1.out" |
    sed 's/[^0-9 ]//g') || fail "no h2load summary for the keep-alive load"
[ "${h1failed:-1}" = 0 ] && [ "${h1err:-1}" = 0 ] && [ "${h1ok:-0}" -gt 0 ] ||
    fail "keep-alive load: $(summary "$tmp/h1.out")"
grep -Eq '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$tmp/h1.out" ||
    fail "keep-alive load: not all 2xx: $(grep '^status codes' "$tmp/h1.out")"
grep -Eq '^ws: [0-9]+ sessions, [0-9]+ messages echoed, 0 bad$' "$tmp/ws.out" ||
    fail "WebSocket: $(tail -5 "$tmp/ws.out")"
[ "$upbad" = 0 ] || fail "uploads: $(head -5 "$tmp/up.err")"
[ "$ups" -gt 0 ] || fail "no upload completed"
echo "soak: passed"
