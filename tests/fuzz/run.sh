#!/bin/sh
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for FUZZ_SECONDS (default 30)
# on a scratch copy of its corpus with the HTTP dictionary (plus tests/fuzz/<name>.dict if there
# is one). Exits non-zero when a target crashes; the crashing inputs of the last run are kept in
# build-fuzz/artifacts/<target>/.
# Usage: tests/fuzz/run.sh [target...]   (default: every tests/fuzz/fuzz_*.c)
# Env: FUZZ_SECONDS, FUZZ_JOBS (parallel workers per target, default 1), CMAKE_ARGS (extra),
#      FUZZ_KEEP_GOING=1 (fork mode: keep fuzzing after a crash to collect several; still fails).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-1}

# shellcheck disable=SC2086
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPT_FUZZ=ON \
    -DPT_SANITIZE=address,undefined ${CMAKE_ARGS:-} >/dev/null
if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
fi
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$(nproc)" --target $targets

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=""
for t in $targets; do
    name=${t#fuzz_}
    rm -rf "build-fuzz/artifacts/$t" # artifacts are those of this run only
    mkdir -p "$tmp/$name" "build-fuzz/artifacts/$t"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -R "tests/fuzz/corpus/$name/." "$tmp/$name/"
    fi
    # The HTTP dictionary, plus tests/fuzz/<name>.dict when the target has one of its own.
    dict="$root/tests/fuzz/http.dict"
    if [ -f "tests/fuzz/$name.dict" ]; then
        cat "$dict" "tests/fuzz/$name.dict" >"$tmp/$name.dict"
        dict="$tmp/$name.dict"
    fi
    echo "== $t: ${seconds}s"
    par=""
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        par="-fork=$jobs -ignore_crashes=1"
    elif [ "$jobs" -gt 1 ]; then
        par="-jobs=$jobs -workers=$jobs"
    fi
    # Run from the scratch dir: with -jobs libFuzzer writes fuzz-N.log files to the cwd.
    # shellcheck disable=SC2086
    if ! (cd "$tmp" && "$root/build-fuzz/$t" "$tmp/$name" -dict="$dict" \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 $par \
        -artifact_prefix="$root/build-fuzz/artifacts/$t/" -print_final_stats=1 \
        >"$tmp/$t.log" 2>&1); then
        cat "$tmp"/fuzz-*.log >>"$tmp/$t.log" 2>/dev/null || true
        tail -n 40 "$tmp/$t.log"
        echo "!! $t crashed; reproducer(s) in build-fuzz/artifacts/$t/"
        failed="$failed $t"
    else
        grep -E 'stat::(number_of_executed_units|new_units_added)|cov:' "$tmp/$t.log" | tail -n 3
        # In fork mode libFuzzer exits 0 after ignored crashes: the artifacts tell.
        for a in "build-fuzz/artifacts/$t"/crash-* "build-fuzz/artifacts/$t"/leak-* \
            "build-fuzz/artifacts/$t"/timeout-* "build-fuzz/artifacts/$t"/oom-*; do
            if [ -e "$a" ]; then
                echo "!! $t left crash artifacts in build-fuzz/artifacts/$t/"
                failed="$failed $t"
                break
            fi
        done
    fi
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all fuzz targets ran clean"
