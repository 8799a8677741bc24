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


def pin_all_threads(pid, cpu):
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


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
    pin_all_threads(p.pid, mine)
    # Alone on its CPU under load: the worker spins, so it never logs a change.
    load(p.port, other, 1)
    assert OFF not in p.stderr()

    hog = subprocess.Popen(["taskset", "-c", str(mine), sys.executable, "-c",
                            "while True: pass"])
    try:
        for _ in range(5):
            load(p.port, other, 1)
            if OFF in p.stderr():
                break
        log = p.stderr()
        assert OFF in log, "a worker sharing its CPU with a busy process kept spinning"
        assert "waited" in log.split(OFF, 1)[1].splitlines()[0]
    finally:
        hog.kill()
        hog.wait()

    # The CPU is the worker's own again: the spin comes back after a second of calm reviews.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        load(p.port, other, 2)
        if ON in p.stderr().split(OFF, 1)[1]:
            break
    assert ON in p.stderr().split(OFF, 1)[1], "the spin did not come back on a CPU of its own"
