"""Stops are clean: SIGTERM and SIGINT end a run in one line with Blender and every Ray process
stopped and nothing left listening; the embedded Ray listens on loopback only; and the session
record under OUT kills only the processes it recorded, still the same ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import requires_bpy
from test_pipeline_run import SMALL, listening_pids, manifest_events, runs  # noqa: F401 (runs: a fixture)

from d4d.pipelines.session import SESSION_RECORD, _identity, reap_session, session_processes


@pytest.fixture
def sleepers():
    """start(folder) -> a ``sleep`` process writing into ``folder`` (so it uses that folder); all killed after."""
    started = []

    def start(folder: Path) -> subprocess.Popen:
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(["sleep", "120"], stdout=open(folder / "log", "w"))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def write_record(out: Path, session_dir: str, processes: list) -> None:
    (out / SESSION_RECORD).write_text(json.dumps({"session_dir": session_dir, "processes": processes}))


def test_a_forged_session_record_kills_nothing(sleepers, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # A folder another program uses, named in the record with that program's exact identity.
    other = sleepers(tmp_path / "someones_folder")
    for session_dir in (str(tmp_path / "someones_folder"), "/", str(tmp_path)):
        write_record(out, session_dir, [_identity(other.pid)])
        assert reap_session(out) == [] and other.poll() is None and not (out / SESSION_RECORD).exists()
    # A Ray-shaped session directory, but the recorded process is not the one now under that pid.
    session = tmp_path / "session_2026-12-03_12-00-00_123456_42"
    inside = sleepers(session)
    assert session_processes(str(session)) == [inside.pid]
    for forged in ({**_identity(inside.pid), "start": _identity(inside.pid)["start"] - 1},
                   {**_identity(inside.pid), "exe": "/usr/bin/python3"},
                   {"pid": inside.pid}):
        write_record(out, str(session), [forged])
        assert reap_session(out) == [] and inside.poll() is None
    (out / SESSION_RECORD).write_text("{not json")
    assert reap_session(out) == [] and inside.poll() is None
    # The recorded process, still the same one and still using its session: the only thing killed.
    write_record(out, str(session), [_identity(inside.pid), _identity(other.pid)])
    assert reap_session(out) == [inside.pid]
    assert inside.wait(timeout=10) == -signal.SIGKILL and other.poll() is None


def loopback(port_owner_addresses: set[str]) -> bool:
    return all(a.startswith(("127.", "::ffff:127.", "::1")) for a in port_owner_addresses)


def listening_addresses(pids: set[int]) -> dict[int, set[str]]:
    """pid -> the local addresses its listening TCP sockets are bound to."""
    bound = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                raw = bytes.fromhex(fields[1].split(":")[0])
                if v6:
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    address = bytes(b for w in words for b in w)
                    text = ("::ffff:" + ".".join(map(str, address[12:]))) if address[:12] == b"\0" * 10 + b"\xff\xff" else address.hex()
                    text = "::1" if address == b"\0" * 15 + b"\1" else text
                else:
                    text = ".".join(map(str, raw[::-1]))
                bound[fields[9]] = text
    found: dict[int, set[str]] = {}
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        addresses = {bound[link[8:-1]] for link in links if link.startswith("socket:[") and link[8:-1] in bound}
        if addresses:
            found[pid] = addresses
    return found


@requires_bpy
@pytest.mark.blender
@pytest.mark.slow
def test_sigterm_and_sigint_stop_the_run_in_one_line_leaving_nothing_running(builtin_assets, runs, tmp_path):  # noqa: F811
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("rigid", "skinned", "shapekeys", "late_start", "static"):
        (assets / f"{name}.glb").write_bytes(builtin_assets[name].read_bytes())
    out = tmp_path / "out"
    args = ["--source", f"local:{assets}", "--out", str(out), *SMALL]

    driver = runs.start(args, tmp_path / "term.log")
    deadline = time.time() + 180
    while time.time() < deadline and not any(e["event"] == "asset_done" for e in manifest_events(out)):
        time.sleep(0.2)
    record = json.loads((out / SESSION_RECORD).read_text())
    ours = set(session_processes(record["session_dir"])) | {driver.pid}
    bound = listening_addresses(ours)
    assert bound, "nothing of the run listens: this test would not see a socket on another interface"
    assert all(loopback(a) for a in bound.values()), f"the embedded Ray listens beyond loopback: {bound}"
    blender = [p for p in runs.pids() if b"d4d.rendering.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert blender, "no Blender worker is running: this test would not see one outlive the run"

    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=120) == 128 + signal.SIGTERM
    log = (tmp_path / "term.log").read_text()
    assert "Traceback" not in log and log.strip().splitlines()[-1].startswith("d4d-curate: stopped by SIGTERM ("), log[-3000:]
    assert not session_processes(record["session_dir"]), "Ray processes of the stopped run are left"
    assert not [p for p in blender if Path(f"/proc/{p}").exists()], "a Blender worker outlived the run"
    assert not {p: ports for p, ports in listening_pids().items() if p in set(runs.pids())}
    assert not (out / SESSION_RECORD).exists()
    done = {e["uid"] for e in manifest_events(out) if e["event"] == "asset_done"}

    # SIGINT (Ctrl-C) on the rerun, as soon as it has started its workers.
    driver = runs.start(args, tmp_path / "int.log")
    deadline = time.time() + 180
    while time.time() < deadline and "to do on" not in (tmp_path / "int.log").read_text():
        time.sleep(0.2)
    record = json.loads((out / SESSION_RECORD).read_text())
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) == 128 + signal.SIGINT
    log = (tmp_path / "int.log").read_text()
    assert f"{len(done)} already finished" in log
    assert "Traceback" not in log and log.strip().splitlines()[-1].startswith("d4d-curate: stopped by SIGINT ("), log[-3000:]
    assert not session_processes(record["session_dir"])
    assert not {p: ports for p, ports in listening_pids().items() if p in set(runs.pids())}
