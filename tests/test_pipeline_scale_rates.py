"""The run's recent rates (pipelines.rates): the ETA follows a change of pace; per node, per stage."""

from __future__ import annotations

import pytest

from d4d.pipelines.rates import RecentRate, duration


def test_the_recent_rate_follows_a_node_joining_and_counts_each_node_and_stage():
    start = 1_000_000.0
    rate = RecentRate(start, window_s=600.0)
    for i in range(1, 601):  # node a: one asset every 2 s for 20 minutes
        rate.add(start + 2.0 * i, "a", {"fetch": 0.5, "curate": 1.5})
        if i == 150:  # a quarter of the way: 5 minutes in, the window is the run so far
            assert rate.per_hour(start + 300.0) == pytest.approx(1800.0)
    for j in range(1, 451):  # node b joins for the last 5 minutes: one every 2/3 s, stages of its own
        rate.add(start + 900.0 + j * 300.0 / 450, "b", {"fetch": 0.1, "curate": 0.3})
    now = start + 1200.0
    assert rate.by_node(now) == pytest.approx({"a": 1800.0, "b": 2700.0}, rel=0.01)
    assert rate.per_hour(now) == pytest.approx(4500.0, rel=0.01)  # the whole run's mean is 3150/h
    assert rate.eta_s(4500, now) == pytest.approx(3600.0, rel=0.01)
    assert rate.by_stage(now) == pytest.approx({"fetch": (300 * 0.5 + 450 * 0.1) / 750, "curate": (300 * 1.5 + 450 * 0.3) / 750}, rel=0.01)
    snapshot = rate.snapshot(4500, now)
    assert snapshot["window_s"] == 600.0 and snapshot["eta_s"] == pytest.approx(3600.0, rel=0.01)
    assert rate.per_hour(now + 601.0) == 0.0 and rate.eta_s(10, now + 601.0) is None  # nothing finished in the last 10 minutes
    assert (duration(None), duration(42), duration(600), duration(7200)) == ("unknown", "42 s", "10 min", "2.0 h")


def test_the_console_bar_counts_assets_and_its_time_left_follows_the_recent_rate(capsys):
    import re
    import time
    from types import SimpleNamespace

    from d4d.pipelines.console import RunProgress

    # 2 of 10 assets finished by an earlier run; this one started 100 s ago.
    progress = RunProgress(total=10, done=2, started=time.time() - 100.0, every_s=0.0)
    progress.open()
    for decision in ("keep", "keep", "reject", "keep"):
        clip = SimpleNamespace(decision=decision, reason="distorted" if decision == "reject" else None, detail=None, timings={"curate": 1.0})
        progress.asset(SimpleNamespace(name="robot.glb"), [clip], node="node-a")
    assert progress.tick()
    progress.close()
    out, err = capsys.readouterr()
    assert "[3/10] robot.glb keep in 1.0s" in out and "[5/10] robot.glb reject distorted in 1.0s" in out
    assert re.search(r"\[6/10 assets\] this run's clips: keep 3 reject 1 failed 0 \| 14\d assets/h, ETA 2 min .*by node: node-a 14\d/h", out)
    # The bar (stderr, plain lines when not a terminal): 4 assets in 100 s leave 4 for 100 s,
    # where tqdm's own rate (4 assets in the bar's first milliseconds) would say none.
    assert "\r" not in err
    assert re.search(r"curate: 6/10 assets \[00:00 elapsed, about 01:(39|40) left, this run's clips: keep 3 reject 1 failed 0\]", err.splitlines()[-1]), err
