# shellcheck shell=bash disable=SC2034  # CT and HZ are read by the scripts that source this
# Shared by bench/tls.sh and bench/plain.sh (sourced, not run): processes, CPU accounting and the
# raw-results helpers. A cell's results are lines of $RAW: row, target, round, metric, value.
# Uses the caller's TMP, RAW and OTHER_MAX when called.

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
