"""d4d-curate end to end on Ray with real Blender: failures, kill -9 and resume, a Ray cluster.

Each run is a subprocess with a unique marker in its environment; every process it leaves
behind (Ray's own, Blender workers) is found by that marker and killed by pid afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SHARED_ASSETS, join_cluster, requires_bpy

from d4d.curation.sources import LocalFolderSource
from d4d.pipelines.ray_adapter import task_name
from d4d.pipelines.steps import Curate, Fetch

pytestmark = [requires_bpy, pytest.mark.blender, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--frames", "8", "--resolution", "32", "--engine", "workbench", "--prepass-resolution", "32", "--workers", "1", "--max-sample-step-s", "none"]


def marked_pids(marker: str, ray_tmp: str) -> list[int]:
    """Processes one test started: ``D4D_TEST_RUN=marker`` in their environment, or Ray's
    temporary directory ``ray_tmp`` in their environment or open files (Ray rewrites its
    processes' titles over the start of their environment)."""
    pids = []
    needles = (f"D4D_TEST_RUN={marker}".encode(), ray_tmp.encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(n in environ for n in needles) or any(f.startswith(ray_tmp) for f in files):
            pids.append(int(entry.name))
    return pids


def actor_pids(marked: list[int], actor: str, steps: str) -> list[int]:
    """Of the processes ``marked``, those of Ray actors of class ``actor``: Ray titles an idle
    actor's process ``ray::<class>`` and a busy one by its task's name (``ray_adapter.task_name``:
    the ``steps`` first), so either title is the actor's."""
    titles = (f"ray::{actor}".encode(), f"ray::{task_name(steps, '')}".encode())
    found = []
    for pid in marked:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(titles):
                found.append(pid)
    return found


def kill_marked(marker: str, ray_tmp: str) -> None:
    for _ in range(5):
        pids = marked_pids(marker, ray_tmp)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


class Runs:
    """Starts curation subprocesses that share one marker, and cleans up after them."""

    def __init__(self):
        self.marker = uuid.uuid4().hex
        self.ray_tmp = tempfile.mkdtemp(prefix="d4dray", dir="/tmp")  # short: Ray's socket paths have a length limit
        self.env = {**os.environ, "D4D_TEST_RUN": self.marker, "RAY_TMPDIR": self.ray_tmp, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.env.pop("RAY_ADDRESS", None)

    def start(self, args: list[str], log: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "d4d.pipelines.curate", *args], cwd=REPO, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def run(self, args: list[str], log: Path, timeout: float = 240) -> str:
        proc = self.start(args, log)
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            proc.kill()
            self.kill_all()
        text = log.read_text()
        assert rc == 0, text[-3000:]
        return text

    def kill_all(self) -> None:
        kill_marked(self.marker, self.ray_tmp)

    def pids(self) -> list[int]:
        return marked_pids(self.marker, self.ray_tmp)

    def close(self) -> None:
        self.kill_all()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def runs():
    r = Runs()
    yield r
    r.close()


def manifest_events(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def shard_uids(out: Path) -> list[str]:
    """Every row's uid in OUT's shard files (the folder also holds the dataset card)."""
    return [uid for path in sorted((out / "shards").glob("*.parquet")) for uid in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()]


def decisions(out: Path) -> dict[str, dict]:
    rows = pq.read_table(out / "decisions.parquet").to_pylist()
    assert len({r["uid"] for r in rows}) == len(rows), "a uid appears twice in decisions.parquet"
    return {r["name"]: r for r in rows}


def truncated_alembic(path: Path) -> None:
    """Half of a real Alembic file: Blender's Alembic reader aborts the whole process on it."""
    data = (SHARED_ASSETS / "example.abc").read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.skipif(not SHARED_ASSETS.exists(), reason="../shared/assets is not present")
def test_crash_and_hang_are_recorded_as_failed_while_the_rest_finish(builtin_assets, exported_formats, runs, ray_cluster, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, path in builtin_assets.items():
        shutil.copy(path, assets / f"{name}.glb")
    truncated_alembic(assets / "crash.abc")
    shutil.copy(exported_formats / "heavy.blend", assets / "hang.blend")  # a SUBSURF level-10 cube
    out = tmp_path / "out"
    log = runs.run(["--source", f"local:{assets}", "--out", str(out), *join_cluster(runs, ray_cluster), *SMALL, "--max-attempts", "2", "--prepass-timeout", "6",
                    "--shard-batch", "2", "--shard-writers", "3"], tmp_path / "run.log")
    assert "--shard-writers 3: the cluster has room for 1 beside a worker; using 1" in log  # 2 CPUs: one worker, one writer

    rows = decisions(out)
    assert sorted(rows) == sorted([f"{n}.glb" for n in builtin_assets] + ["crash.abc", "hang.blend"])
    crash, hang = rows["crash.abc"], rows["hang.blend"]
    assert (crash["decision"], crash["reason"], crash["error_kind"], crash["attempts"], crash["stage"]) == ("failed", "render_failed", "crashed", 2, "curate")
    assert (hang["decision"], hang["reason"], hang["error_kind"], hang["attempts"]) == ("failed", "render_failed", "timeout", 2)
    assert (rows["static.glb"]["decision"], rows["static.glb"]["reason"], rows["static.glb"]["stage"]) == ("reject", "no_animation", "precheck")
    assert rows["rigid.glb"]["decision"] == "keep"
    assert all(rows[f"{n}.glb"]["decision"] in ("keep", "reject") for n in builtin_assets)

    failures = {r["uid"]: r for r in pq.read_table(out / "failures.parquet").to_pylist()}
    assert set(failures) == {crash["uid"], hang["uid"]}
    errors = json.loads(failures[hang["uid"]]["errors_json"])
    assert [e["error_kind"] for e in errors] == ["timeout", "timeout"] and "timed out after 6 s" in errors[0]["detail"]

    kept = {r["uid"] for r in rows.values() if r["decision"] == "keep"}
    assert sorted(shard_uids(out)) == sorted(kept)
    assert all(rows[n]["in_shards"] == (rows[n]["decision"] == "keep") for n in rows)
    from d4d.shards import verify_shards

    checked, problems = verify_shards(out / "shards")
    assert checked == len(kept) and not problems
    stats = json.loads((out / "stats.json").read_text())
    assert stats["by_decision"] == dict(Counter(r["decision"] for r in rows.values()))
    # The crash kills the import (the whole asset fails); the hang is in its clip's analysis (the clip fails).
    assert stats["assets"]["failed_whole"] == 1 and stats["clips"]["judged"] == len(builtin_assets) + 1
    assert hang["stage"] == "precheck" and hang["asset_uid"] == hang["uid"]
    assert stats["retried_attempts"] == 2 and stats["assets_per_hour"] > 0
    assert "retry crash.abc" in log and "[7/7]" in log


@pytest.mark.skipif(not SHARED_ASSETS.exists(), reason="../shared/assets is not present")
def test_kill_of_worker_and_driver_then_rerun_gives_each_asset_exactly_once(builtin_assets, runs, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, path in builtin_assets.items():
        shutil.copy(path, assets / f"{name}.glb")
    for path in SHARED_ASSETS.iterdir():
        shutil.copy(path, assets / path.name)
    expected = {r.uid for r in LocalFolderSource(assets).records()}
    out = tmp_path / "out"
    args = ["--source", f"local:{assets}", "--out", str(out), *SMALL, "--shard-batch", "1", "--max-attempts", "2", "--shard-writers", "2"]

    driver = runs.start(args, tmp_path / "first.log")
    worker_killed = False
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        events = manifest_events(out)
        results = sum(e["event"] == "asset_done" for e in events)
        if not worker_killed and results >= 1:
            actors = actor_pids(runs.pids(), "StepsActor", f"{Fetch.name}+{Curate.name}")
            if actors:
                os.kill(actors[0], signal.SIGKILL)
                worker_killed = True
        if worker_killed and results >= 6 and any(e["event"] == "attempt_failed" for e in events):
            break
        time.sleep(0.1)
    assert driver.poll() is None, "the first run finished before it could be killed:\n" + (tmp_path / "first.log").read_text()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    runs.kill_all()
    before = manifest_events(out)
    finished_before = {e["uid"] for e in before if e["event"] == "asset_done"}
    lost = [e for e in before if e["event"] == "attempt_failed"]
    assert 6 <= len(finished_before) < len(expected)
    assert [e["reason"] for e in lost] == ["worker_lost"]

    log = runs.run(args, tmp_path / "second.log")
    assert f"{len(finished_before)} already finished" in log
    assert not (out / "scratch").exists(), "temporary renders of the killed run are left over"  # removed at the end of a run
    events = manifest_events(out)
    result_counts = Counter(e["uid"] for e in events if e["event"] == "result")
    assert set(result_counts) == expected and set(result_counts.values()) == {1}, "an asset was finished twice"

    rows = decisions(out)
    assert {r["uid"] for r in rows.values()} == expected
    lost_row = next(r for r in rows.values() if r["uid"] == lost[0]["uid"])
    assert lost_row["attempts"] == 2 and lost_row["decision"] != "failed"
    kept = {r["uid"] for r in rows.values() if r["decision"] == "keep"}
    uids = shard_uids(out)
    assert len(uids) == len(set(uids)) and set(uids) == kept and kept
    # Two shard writers, across the kill: each shard file published once (no name taken twice),
    # holding rows journaled with it, and the dataset card counts them all.
    sharded = [e for e in events if e["event"] == "sharded"]
    files = [Path(path) for e in sharded for path in e["shards"]]
    assert len(files) == len(set(files)) and sorted(files) == sorted((out / "shards").glob("part-*.parquet"))
    for e in sharded:
        assert {u for path in e["shards"] for u in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()} <= set(e["uids"])
    assert "shards (writer " in (tmp_path / "first.log").read_text() + log
    assert f"| clips (rows) | {len(kept)} |" in (out / "shards" / "_README.md").read_text()
    assert all(r["decision"] == "reject" and r["reason"] == "no_animation" for r in rows.values() if r["name"].startswith("example"))


#: Ports Ray's components take by default: a free port given to another component must not be one
#: of them (``ray start`` refuses two components on one port).
RAY_DEFAULT_PORTS = {6379, 8265, 10001, 52365, 8076}


def free_port() -> int:
    """A free loopback port that no Ray component takes by default."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RAY_DEFAULT_PORTS:
            return port


@pytest.mark.parametrize("how", ["flag", "env"])
def test_driver_joins_a_running_cluster(how, builtin_assets, ray_cluster, tmp_path):
    """With ``--address``, or with RAY_ADDRESS as ``ray job submit`` sets it for its entry point."""
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "static"):
        shutil.copy(builtin_assets[name], assets / f"{name}.glb")
    out = tmp_path / "out"
    env = dict(ray_cluster["runs"].env)
    join = ["--address", ray_cluster["address"]] if how == "flag" else []
    if how == "env":
        env["RAY_ADDRESS"] = ray_cluster["address"]
    proc = subprocess.run(
        [sys.executable, "-m", "d4d.pipelines.curate", "--source", f"local:{assets}", "--out", str(out), *join, *SMALL],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"Ray cluster at {ray_cluster['address']} (token authentication)" in proc.stdout
    rows = decisions(out)
    assert rows["rigid.glb"]["decision"] == "keep" and rows["static.glb"]["reason"] == "no_animation"
    assert shard_uids(out) == [rows["rigid.glb"]["uid"]]


def test_ray_job_submit_runs_the_same_job(builtin_assets, ray_cluster, tmp_path):
    from ray._private.utils import get_dashboard_dependency_error

    missing = get_dashboard_dependency_error()
    if missing is not None:
        pytest.skip(f"ray job submit needs the dashboard (ray[default]): {missing}")
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "static"):
        shutil.copy(builtin_assets[name], assets / f"{name}.glb")
    out = tmp_path / "out"
    ray = str(Path(sys.executable).with_name("ray"))
    # Without the token mode, Ray's client refuses: the cluster really authenticates.
    refused = subprocess.run([ray, "job", "list", "--address", ray_cluster["dashboard"]], cwd=REPO, env=ray_cluster["runs"].env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "token" in (refused.stdout + refused.stderr).lower()
    # Exactly the README's command: the client names the token mode; the token is in ~/.ray/auth_token.
    proc = subprocess.run(
        [ray, "job", "submit", "--address", ray_cluster["dashboard"], "--working-dir", ".", "--",
         "python", "-m", "d4d.pipelines.curate", "--source", f"local:{assets}", "--out", str(out), *SMALL],
        cwd=REPO, env={**ray_cluster["runs"].env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "succeeded" in output and "d4d-curate: Ray cluster at" in output
    rows = decisions(out)
    assert rows["rigid.glb"]["decision"] == "keep" and rows["static.glb"]["reason"] == "no_animation"
    assert shard_uids(out) == [rows["rigid.glb"]["uid"]]


def listening_pids() -> dict[int, set[int]]:
    """pid -> TCP ports it listens on, for every process of this machine (its own sockets, /proc/net)."""
    inodes = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    found: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        ports = {inodes[link[8:-1]] for link in links if link.startswith("socket:[") and link[8:-1] in inodes}
        if ports:
            found[int(entry.name)] = ports
    return found


def test_a_killed_driver_leaves_no_listening_process_once_the_next_run_starts(builtin_assets, runs, tmp_path):
    from d4d.pipelines.session import SESSION_RECORD, session_processes

    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "skinned", "shapekeys", "static"):
        shutil.copy(builtin_assets[name], assets / f"{name}.glb")
    out = tmp_path / "out"
    args = ["--source", f"local:{assets}", "--out", str(out), *SMALL]
    driver = runs.start(args, tmp_path / "first.log")
    deadline = time.time() + 120
    while time.time() < deadline and not any(e["event"] == "asset_done" for e in manifest_events(out)):
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    session = json.loads((out / SESSION_RECORD).read_text())["session_dir"]
    time.sleep(2)
    left = set(session_processes(session))
    listening = {pid: ports for pid, ports in listening_pids().items() if pid in left}
    assert listening, "the killed driver's Ray left nothing listening: this test would not see the leak it checks"

    second = runs.start(args, tmp_path / "second.log")  # the same command again, on the same OUT
    deadline = time.time() + 120
    while time.time() < deadline and "embedded local Ray" not in (tmp_path / "second.log").read_text():
        time.sleep(0.2)
    log = (tmp_path / "second.log").read_text()
    assert "processes the embedded Ray of a killed earlier run left running" in log, log[-2000:]
    still = {pid: ports for pid, ports in listening_pids().items() if pid in left}  # checked while the new run goes on
    assert not still, f"processes of the killed run still listen: {still}"
    assert not session_processes(session)
    assert second.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()[-2000:]
    assert not (out / SESSION_RECORD).exists() and len(decisions(out)) == 4


def test_every_entry_gets_one_row_and_an_output_that_links_out_is_refused(builtin_assets, runs, ray_cluster, tmp_path):
    """Broken links, a directory with an asset's name and a duplicate each get a row saying why,
    counted on the console; an OUT whose renders folder links elsewhere is refused before anything is written."""
    assets = tmp_path / "assets"
    (assets / "sub").mkdir(parents=True)
    shutil.copy(builtin_assets["rigid"], assets / "rigid.glb")
    shutil.copy(builtin_assets["rigid"], assets / "sub" / "rigid_copy.glb")
    (assets / "folder.glb").mkdir()
    (assets / "dangling.fbx").symlink_to(tmp_path / "nowhere.fbx")
    (assets / "loop.glb").symlink_to(assets / "loop.glb")
    out = tmp_path / "out"
    log = runs.run(["--source", f"local:{assets}", "--out", str(out), *join_cluster(runs, ray_cluster), *SMALL], tmp_path / "run.log")
    rows = {r["name"]: r for r in pq.read_table(out / "decisions.parquet").to_pylist()}
    assert sorted(rows) == ["dangling.fbx", "folder.glb", "loop.glb", "rigid.glb", "rigid_copy.glb"]
    assert (rows["dangling.fbx"]["decision"], rows["dangling.fbx"]["reason"]) == ("failed", "dangling_link")
    assert (rows["loop.glb"]["reason"], rows["folder.glb"]["reason"]) == ("link_loop", "not_a_file")
    copy = rows["rigid_copy.glb"]
    assert (copy["decision"], copy["reason"]) == ("reject", "duplicate") and rows["rigid.glb"]["uid"] in copy["detail"]
    assert rows["rigid.glb"]["decision"] == "keep"
    assert "4 of 5 entries cannot be curated and get a row saying why: 1 dangling_link, 1 duplicate, 1 link_loop, 1 not_a_file" in log
    assert "entries not curated: 1 dangling_link, 1 duplicate, 1 link_loop, 1 not_a_file" in log  # the closing summary

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    linked = tmp_path / "linked_out"
    linked.mkdir()
    (linked / "renders").symlink_to(elsewhere)
    done = subprocess.run([sys.executable, "-m", "d4d.pipelines.curate", "--source", f"local:{assets}", "--out", str(linked), *SMALL],
                          cwd=REPO, env=runs.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "a link out of the output directory" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"] and not (linked / "manifest.jsonl").exists()
