# shellcheck shell=bash disable=SC2034  # CT and HZ are read by the scripts that source this
# Shared by bench/tls.sh and bench/plain.sh (sourced, not run): processes, CPU accounting and the
# raw-results helpers. A cell's results are lines of $RAW: row, target, round, metric, value.
# Uses the caller's TMP, RAW and OTHER_MAX (snapshot: LOAD_CPU, PROXY_CPU, ORIGIN) when called.

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; } # T0: the caller's start
die() { log "FATAL: $*"; exit 1; }

descendants() {
    local p
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$p"
        descendants "$p"
    done
}
stop_pid() { # one PID started here, plus its children
    local p=$1 kids
    kids=$(descendants "$p")
    # shellcheck disable=SC2086
    kill -TERM "$p" $kids 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL "$p" $kids 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
port_busy() { ss -Htln "sport = :$1" | grep -q .; }

cpu_ticks() { # utime+stime of a process tree (all threads), in clock ticks
    local t=0 p f
    for p in $1 $(descendants "$1"); do
        f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}
# cpu_busy <cpu>: jiffies of one CPU, "busy total task"; task = user+nice+system+irq+softirq+steal.
# This kernel accounts by ticks (no CONFIG_IRQ_TIME_ACCOUNTING): a tick that lands in a softirq
# goes to the softirq column of /proc/stat but to the interrupted process's stime. Loopback TCP
# does much of its work in softirqs, so with user+nice+system alone other_pct (task time not
# spent by the processes measured) came out at -20% to -60% of a CPU in every plain-HTTP cell
# (clamped to 0, it hid a busy loop sharing the proxy's CPU in some cells and halved it in the
# others); with them it is -4% to +6% on a quiet machine, and 30-50% with that busy loop. Steal
# (time the hypervisor ran something else) counts as other work too.
cpu_busy() {
    awk -v c="cpu$1" '$1==c {t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t, $2+$3+$4+$7+$8+$9}' /proc/stat
}
child_ticks() { # CT = CPU time of this shell's waited-for children, in clock ticks
    times >"$TMP/times.txt" # in this shell: a subshell would report its own children only
    CT=$(awk -v h="$HZ" 'NR==2 {n=0; for (i=1;i<=2;i++) {split($i, a, "m"); sub("s", "", a[2]); n+=a[1]*60+a[2]} printf "%.0f", n*h}' "$TMP/times.txt")
}
HZ=$(getconf CLK_TCK)
# SNAP = "proxy busy total other proxy_cpu_other origin children": the counters a cell reads
# before and after its load (clock ticks): the proxy's CPU time (0 without a PID), the load
# CPU's busy, total and other-process time, the proxy CPU's other-process time, the origin's CPU
# time and this shell's children's. In this shell, not a subshell, for child_ticks.
snapshot() { # proxy PID or ""
    local c=0 b t k q
    [ -z "$1" ] || c=$(cpu_ticks "$1")
    read -r b t k <<<"$(cpu_busy "$LOAD_CPU")"
    read -r _ _ q <<<"$(cpu_busy "$PROXY_CPU")"
    child_ticks
    SNAP="$c $b $t $k $q $(cpu_ticks "$ORIGIN") $CT"
}

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RAW"; } # row target rep metric value
# rounds <row> <target>: the rounds used, the valid ones where other processes stayed under
# OTHER_MAX, or, when there is no such round, every valid one (the cell is then "disturbed").
rounds() {
    awk -F'\t' -v r="$1" -v t="$2" -v x="$OTHER_MAX" '
        $1==r && $2==t && $4=="valid" && $5==1 {ok[$3]=1}
        $1==r && $2==t && $4=="other_pct" {o[$3]=$5}
        END {for (k in ok) if (o[k]=="" || o[k]+0 <= x) {print k; q=1}
             if (!q) for (k in ok) print k}' "$RAW"
}
disturbed() { # row target: true when no valid round of the cell was undisturbed
    awk -F'\t' -v r="$1" -v t="$2" -v x="$OTHER_MAX" '
        $1==r && $2==t && $4=="valid" && $5==1 {ok[$3]=1}
        $1==r && $2==t && $4=="other_pct" {o[$3]=$5}
        END {n=0; q=0; for (k in ok) {n++; if (o[k]=="" || o[k]+0 <= x) q=1} exit !(n && !q)}' "$RAW"
}
nused() { rounds "$1" "$2" | grep -c . || true; }
nvalid() { awk -F'\t' -v r="$1" -v t="$2" '$1==r && $2==t && $4=="valid" && $5==1 {n++} END {print n+0}' "$RAW"; }
bound() { # row target: true when the median cell was bound by the load CPU, not the proxy
    awk -v p="$(med "$1" "$2" cpu_pct)" -v l="$(med "$1" "$2" load_pct)" \
        'BEGIN {exit !(p != "NA" && l != "NA" && p + 0 < 90 && l + 0 >= 95)}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a=="NA" || b=="NA" || a=="" || b=="" || b==0) print "NA"; else printf "%.2f", a/b}'; }
fmt() { awk -v v="$1" 'BEGIN {if (v=="NA") print "NA"; else {s=sprintf("%.0f", v); o=""; while (length(s)>3) {o="," substr(s, length(s)-2) o; s=substr(s, 1, length(s)-3)} print s o}}'; }

# ---- the proxies' configurations, as ../shared/bench/run-peers.sh writes them. They read the
# caller's BP (the origin's port), PORT (each proxy's), NOFILE and MAXCONN; the arguments carry
# what the plain and the TLS runs differ in. Each writes DIR's configuration file.
peer_conf_nginx() { # dir, the server block's listen line and any TLS lines[, http lines, location lines]
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $MAXCONN; }
http {
  access_log off;
  client_body_temp_path $1/t_body; proxy_temp_path $1/t_proxy;
  fastcgi_temp_path $1/t_fcgi; uwsgi_temp_path $1/t_uwsgi; scgi_temp_path $1/t_scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
${3:-}
  upstream origin {
    server 127.0.0.1:$BP;
    keepalive 64;
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
  server {
$2
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${4:-}
    }
  }
}
CONF
}
peer_conf_haproxy() { # dir, the frontend's bind line, global lines beyond the common ones[, frontend lines]
    cat >"$1/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn $MAXCONN
  no strict-limits
$3
defaults
  mode http
  option http-keep-alive
  http-reuse safe
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
$2
  maxconn $MAXCONN
${4:-}
  default_backend be
backend be
  server origin 127.0.0.1:$BP
CONF
}
# PORTICO_HEADERS=all: each peer configured to do the work Portico does by default, so that all
# of them send the origin the same request and the client the same response head. To the request:
# X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host, Forwarded (for, host, proto),
# Via, X-Request-Id (the client's, else a new one) and the client's Host kept; from the response:
# Server and X-Powered-By removed (nginx writes its own Server: "nginx" with server_tokens off).
# Argument: the scheme the client used (http or https).
peer_fields_nginx_http() {
    cat <<CONF
  server_tokens off;
  map \$http_x_request_id \$fields_rid { "" \$request_id; default \$http_x_request_id; }
CONF
}
peer_fields_nginx_location() {
    cat <<CONF
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $1;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header Forwarded "for=\$remote_addr;host=\\"\$http_host\\";proto=$1";
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id \$fields_rid;
      proxy_hide_header X-Powered-By;
CONF
}
# HAProxy 2.6 has no "option forwarded" (2.8): Forwarded is written out. Its request ids are
# UUIDs (36 characters, Portico's 32).
peer_fields_haproxy() {
    cat <<CONF
  option forwardfor
  http-request set-header X-Forwarded-Proto $1
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header Forwarded "for=%[src];host=\\"%[req.hdr(host)]\\";proto=$1"
  http-request add-header Via "1.1 haproxy"
  unique-id-format %[uuid()]
  http-request set-header X-Request-Id %[unique-id] unless { req.hdr(x-request-id) -m found }
  http-response del-header Server
  http-response del-header X-Powered-By
CONF
}

# Portico adding none of its request fields (X-Forwarded-*, Forwarded, Via, X-Request-Id), so
# that the origin gets what the peers' configurations send it: the same work (PORTICO_HEADERS=off).
portico_conf_bare() { # dir, the listen entry (YAML, one item of the list)
    cat >"$1/portico.yaml" <<CONF
listen:
$2
workers: 1
access_log: off
proxy_headers: {x_forwarded_for: false, x_forwarded_proto: false, x_forwarded_host: false, forwarded: false, via: false, request_id: false}
upstreams:
  origin:
    servers: [127.0.0.1:$BP]
routes:
  - proxy: origin
CONF
}
