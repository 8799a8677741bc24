"""The worker loop's post-turn spin (src/core/loop.c, spin_review): after a turn with events a
worker polls without sleeping for 50 us, but only while it has its CPU mostly to itself. A
worker that has to share its CPU with another busy thread stops spinning, and spins again once
the CPU is its own. Observed through the debug line the loop logs when the setting changes,
with the real binary pinned to one CPU, a busy process pinned beside it or not, and h2load on
another CPU as the client."""
import os
import shutil
import subprocess
import sys
import time

import pytest

OFF = "loop: post-turn spin off"
ON = "loop: post-turn spin on"
SPIN = "loop: post-turn spin "


def pin_worker(pid, cpu, others):
    """Pins the worker thread (named portico-w0) to <cpu> and every other thread of Portico
    (main, control, log writer) to <others>, so that the worker shares its CPU with nothing
    of Portico's: what it waits for there is what the test puts beside it."""
    workers = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except FileNotFoundError:
            continue
        if name.startswith("portico-w"):
            os.sched_setaffinity(int(tid), {cpu})
            workers += 1
        else:
            os.sched_setaffinity(int(tid), others)
    assert workers == 1, f"{workers} worker threads in /proc/{pid}/task"


def last_spin_line(log):
    lines = [x for x in log.splitlines() if SPIN in x]
    return lines[-1] if lines else ""


def load(port, cpu, seconds):
    out = subprocess.run(["taskset", "-c", str(cpu), "h2load", "--h1", "-c", "8", "-D",
                          str(seconds), "-T", "5", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 20)
    line = next((s for s in out.stdout.splitlines() if s.startswith("requests:")), "")
    fields = line.replace(",", "").split()
    assert fields, out.stdout + out.stderr
    succeeded, failed = int(fields[7]), int(fields[9])
    assert succeeded > 0 and failed == 0, line
    return succeeded


@pytest.mark.deadline(90)
def test_spin_stops_on_a_shared_cpu_and_comes_back(portico):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs: one for Portico (and the busy process), one for h2load")
    if not shutil.which("h2load"):
        pytest.skip("h2load not installed")
    mine, other = cpus[-1], cpus[0]
    p = portico({"workers": 1, "access_log": "off", "error_log": {"level": "debug"},
                 "routes": [{"respond": {"status": 200, "body": "ok\n"}}]})
    pin_worker(p.pid, mine, set(cpus) - {mine})
    # Alone on its CPU under load: the worker spins. A stall of the machine (another process
    # scheduled on that CPU for a moment) may turn it off, but then a second of calm reviews
    # turns it on again: within three one-second loads the last change logged, if any, is on.
    # A worker that stops spinning while alone stays off through all three.
    for _ in range(3):
        load(p.port, other, 1)
        if OFF not in last_spin_line(p.stderr()):
            break
    assert OFF not in last_spin_line(p.stderr()), \
        "a worker alone on its CPU stopped spinning: " + last_spin_line(p.stderr())

    mark = len(p.stderr())  # only what is logged from now on counts
    hog = subprocess.Popen(["taskset", "-c", str(mine), sys.executable, "-c",
                            "while True: pass"])
    try:
        for _ in range(5):
            load(p.port, other, 1)
            if OFF in p.stderr()[mark:]:
                break
        log = p.stderr()[mark:]
        assert OFF in log, "a worker sharing its CPU with a busy process kept spinning"
        assert "waited" in log.split(OFF, 1)[1].splitlines()[0]
    finally:
        hog.kill()
        hog.wait()

    # The CPU is the worker's own again: the spin comes back after a second of calm reviews.
    def after_off():
        return p.stderr()[mark:].split(OFF, 1)[1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        load(p.port, other, 2)
        if ON in after_off():
            break
    assert ON in after_off(), "the spin did not come back on a CPU of its own"
