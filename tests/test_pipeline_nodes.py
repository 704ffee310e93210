"""Node loss on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``, every node on this
machine): the node holding the shard writer and a worker, killed mid-run, costs only the
attempt in flight; the run asks the cluster for a new worker and a new shard writer where
there is room and finishes with every asset exactly once; more --workers than the cluster can
place never hang."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import join_cluster, requires_bpy
from test_pipeline_run import REPO, SMALL, actor_pids, decisions, manifest_events, runs, shard_uids  # noqa: F401 (runs: a fixture)

from d4d.pipelines.steps import WriteShards

pytestmark = [requires_bpy, pytest.mark.blender, pytest.mark.slow]


def raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def node_of(pid: int) -> int:
    """The parent of a Ray worker process: its node's raylet."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def writer_pid(marked, timeout: float = 30.0) -> int:
    """The shard writer's process among the test's (``marked``: the runs fixture), idle or busy."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = actor_pids(marked.pids(), "BatchStepActor", WriteShards.name)
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no shard writer process within {timeout:.0f} s")


def test_a_node_lost_mid_run_costs_only_its_attempts_and_extra_workers_never_hang(builtin_assets, runs, tmp_path, monkeypatch):  # noqa: F811
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_TMPDIR", runs.ray_tmp)  # the cluster's processes are the test's (killed by runs after)
    # Cluster's nodes and the driver both run without token authentication: a home without
    # ~/.ray/auth_token, and no RAY_AUTH_MODE (an earlier in-process join of a token cluster,
    # pipelines.ray_adapter.init_ray, leaves RAY_AUTH_MODE=token in this process's environment).
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        nodes = [cluster.add_node(num_cpus=2), cluster.add_node(num_cpus=2)]  # 4 CPUs: 3 workers and the shard writer, 2 a node
        cluster.wait_for_nodes()
        assets = tmp_path / "assets"
        assets.mkdir()
        for name, path in builtin_assets.items():
            (assets / f"{name}.glb").write_bytes(path.read_bytes())
        out = tmp_path / "out"
        # --workers 4 on a cluster with room for 2 beside the shard writer.
        command = [sys.executable, "-m", "d4d.pipelines.curate", "--source", f"local:{assets}", "--out", str(out), "--address", cluster.address,
                   *SMALL, "--workers", "4", "--shard-batch", "1", "--max-attempts", "2"]
        log = tmp_path / "run.log"
        # The driver must not find a token either, or the cluster cancels every actor it registers.
        env = {**runs.env, "HOME": str(home)}
        env.pop("RAY_AUTH_MODE", None)
        driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline and driver.poll() is None and not any(e["event"] == "asset_done" for e in manifest_events(out)):
            time.sleep(0.1)
        assert driver.poll() is None, "the run finished before a node could be lost:\n" + log.read_text()[-3000:]
        doomed = next(node for node in nodes if node_of(writer_pid(runs)) == raylet_pid(node))  # the writer's node, full: a worker too
        cluster.remove_node(doomed, allow_graceful=False)  # its raylet and every process of it killed
        cluster.add_node(num_cpus=2)  # a node with room comes back (as an autoscaler would)
        assert driver.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        cluster.shutdown()
    text = log.read_text()
    assert "--workers 4: the cluster has room for 3 workers" in text and "using 3" in text
    assert "shard writer lost" in text
    events = manifest_events(out)
    lost = [e for e in events if e["event"] == "attempt_failed"]
    assert lost and {e["reason"] for e in lost} == {"worker_lost"}, "killing the node cost no attempt: the test proves nothing"
    results = Counter(e["uid"] for e in events if e["event"] == "result")
    assert set(results.values()) == {1}, "an asset was finished twice"
    rows = decisions(out)
    assert sorted(rows) == sorted(f"{n}.glb" for n in builtin_assets)
    assert not [r for r in rows.values() if r["decision"] == "failed"], [r for r in rows.values() if r["decision"] == "failed"]
    kept = sorted(r["uid"] for r in rows.values() if r["decision"] == "keep")
    assert kept and sorted(shard_uids(out)) == kept
    assert Path(out / "stats.json").exists()


def can_hide_folders() -> bool:
    """Whether this machine lets a process see a folder of its own in place of another (a mount
    namespace: root, or a user namespace)."""
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def test_a_node_that_does_not_see_the_assets_gets_no_work_and_the_run_says_why(builtin_assets, runs, ray_cluster, tmp_path):  # noqa: F811
    """A second node joins the session's cluster (token authentication, as a worker machine
    does) in a mount namespace where the asset folder is an empty one, as on a machine without
    the shared disk. Its worker fails the node check; no asset is tried there."""
    if not can_hide_folders():
        pytest.skip("unshare -m is not permitted here: no way to give one node its own view of a folder")
    assets, empty = tmp_path / "assets", tmp_path / "empty"
    assets.mkdir()
    empty.mkdir()
    for name, path in builtin_assets.items():
        (assets / f"{name}.glb").write_bytes(path.read_bytes())
    flags = join_cluster(runs, ray_cluster)
    ray_bin = Path(sys.executable).with_name("ray")
    node_env = {**runs.env, "RAY_AUTH_MODE": "token"}  # a worker machine joining a token head
    subprocess.Popen(["unshare", "-m", "sh", "-c", f'mount --bind "{empty}" "{assets}" && exec "{ray_bin}" start --address {ray_cluster["address"]} '
                      f"--num-cpus 2 --node-ip-address 127.0.0.1 --disable-usage-stats --block"], env=node_env,
                     stdout=open(tmp_path / "node.log", "w"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline and "Ray runtime started" not in (tmp_path / "node.log").read_text():
        time.sleep(0.5)
    assert "Ray runtime started" in (tmp_path / "node.log").read_text(), (tmp_path / "node.log").read_text()[-2000:]
    out = tmp_path / "out"
    # 4 CPUs: the shard writer and 3 workers, so at least one worker starts on the hidden node.
    text = runs.run(["--source", f"local:{assets}", "--out", str(out), *flags, *SMALL, "--workers", "3", "--max-attempts", "2"], tmp_path / "run.log")
    assert "failed its check and gets no work: the source differs from the driver's" in text, text[-3000:]
    events = manifest_events(out)
    assert not [e for e in events if e["event"] == "attempt_failed"], "an asset was tried on the node that failed its check"
    results = Counter(e["uid"] for e in events if e["event"] == "result")
    assert set(results.values()) == {1}
    rows = decisions(out)
    assert sorted(rows) == sorted(f"{n}.glb" for n in builtin_assets)
    assert not [r for r in rows.values() if r["decision"] == "failed"]
