"""Chaos (issue 3): 30 s of continuous GET load against a pool of four origins while a chaos
thread kills and restarts origins at random, at least one always up. No GET may fail.

The figures (requests sent, succeeded, failed; kills and restarts) are printed: run with -s to
see them, e.g.
    /usr/bin/python3 -m pytest tests/integration/test_chaos.py -q -s
"""
import os
import random
import threading
import time
from collections import Counter

import pytest

from helpers import Load, ctl_factory, pool_cfg

DURATION = 30.0
# The chaos schedule is seeded: CHAOS_SEED=N in the environment picks another one (a random
# seed each run hunts for new failures, but a test that passes or fails by the draw is no
# check for a submission). The seed is printed either way.
DEFAULT_SEED = 20240601


@pytest.fixture
def make_ctl(_origins):
    return ctl_factory(_origins)


class Chaos:
    """Kills a random running origin or restarts a stopped one every 0.3 to 1.5 s, never
    killing the last one up."""

    def __init__(self, origins, seed):
        self.origins = origins
        self.rng = random.Random(seed)
        self.kills = 0
        self.restarts = 0
        self.events = []  # (monotonic time, "kill"/"start", name)
        self.min_up = len(origins)
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(15)
        assert not self._t.is_alive(), "chaos thread still running"
        if self.error is not None:
            raise self.error

    def _run(self):
        try:
            while not self._stop.wait(self.rng.uniform(0.3, 1.5)):
                up = [o for o in self.origins if o.running]
                down = [o for o in self.origins if not o.running]
                if len(up) > 1 and (not down or self.rng.random() < 0.55):
                    o = self.rng.choice(up)
                    o.stop()
                    self.kills += 1
                    self.events.append((time.monotonic(), "kill", o.name))
                else:
                    o = self.rng.choice(down)
                    o.start()
                    self.restarts += 1
                    self.events.append((time.monotonic(), "start", o.name))
                self.min_up = min(self.min_up, sum(1 for x in self.origins if x.running))
        except Exception as e:  # noqa: BLE001 -- raised again by stop()
            self.error = e


@pytest.mark.deadline(60)
def test_chaos_kill_and_restart_under_load(make_ctl, portico):
    origins = make_ctl("o1", "o2", "o3", "o4")
    # Everything at its defaults: one retry, connect failures walk the pool, ejections of 10 s
    # doubling, at most half the pool ejected at once.
    p = portico(pool_cfg(origins), workers=2)
    seed = int(os.environ.get("CHAOS_SEED", DEFAULT_SEED))
    print(f"\n[chaos] seed={seed}")
    gets = Load(p.port, threads=6, rate=400, target=lambda k, n: f"/chaos/{k}/{n}")
    posts = Load(p.port, threads=1, rate=20, method="POST", target="/chaos/post")
    chaos = Chaos(origins, seed)
    t0 = time.monotonic()
    gets.start()
    posts.start()
    chaos.start()
    try:
        time.sleep(DURATION)
    finally:
        try:
            chaos.stop()
        finally:
            gets.stop()
            posts.stop()
            for o in origins:
                o.start()
    span = time.monotonic() - t0
    ok, failed = gets.ok(), gets.failed()
    per_origin = Counter(r[3] for r in ok)
    print(f"\n[chaos] seed={seed} duration={span:.1f}s kills={chaos.kills} "
          f"restarts={chaos.restarts} fewest servers up={chaos.min_up}")
    print(f"[chaos] GET  sent={gets.sent} succeeded={len(ok)} failed={len(failed)} "
          f"({gets.sent / span:.0f} req/s); per origin {dict(sorted(per_origin.items()))}")
    print(f"[chaos] POST sent={posts.sent} succeeded={len(posts.ok())} "
          f"failed={len(posts.failed())} (not asserted: a POST already sent to a server that "
          f"dies is not retried)")
    if failed:
        kinds = Counter((r[2], r[4]) for r in failed)
        print(f"[chaos] GET failures: {dict(kinds)}")
        for r in failed[:10]:
            near = [(round(t - t0, 2), what, name) for t, what, name in chaos.events
                    if abs(t - r[0]) < 1.5]
            print(f"[chaos]   at {r[0] - t0:.2f}s: {r[2]} {r[4]}; chaos nearby: {near}")
    assert chaos.kills >= 10, f"only {chaos.kills} kills: not much chaos"
    # The load asks for 400/s; an ASan build on a busy 2-core machine may give less.
    assert gets.sent >= 120 * DURATION, f"load too light: {gets.sent} GETs in {span:.0f}s"
    assert len(per_origin) == 4, f"some origin never served: {per_origin}"
    assert not failed, f"{len(failed)} of {gets.sent} GETs failed (seed {seed})"
