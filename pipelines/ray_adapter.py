"""The one place that maps steps onto Ray: actors that hold set-up steps, and Ray start-up.

``StepsActor`` wraps a ``StepChain`` (the per-asset steps and one warm Blender ``Renderer``)
and ``BatchStepActor`` one batch step (the shard writer). ``start_actor`` gives each the
resources its steps declare. Nothing else in ``pipelines`` calls ``ray.remote``.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from pathlib import Path

import ray
from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

from d4d.files import write_bytes_atomic
from d4d.pipelines.chain import StepChain
from d4d.pipelines.space import SpaceGuard
from d4d.pipelines.steps import Resources, WorkerContext, chain_resources
from d4d.rendering.api import Limits


class StepsActor:
    """Runs the per-asset steps; one warm Blender process per actor (isolated by Renderer)."""

    def __init__(self, steps: list, log_dir: str, scratch_dir: str, limits: Limits, space: SpaceGuard | None):
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        self.chain = StepChain(steps, WorkerContext(Path(log_dir) / f"worker-{os.getpid()}", Path(scratch_dir), limits, space))
        self.chain.setup()

    def ready(self) -> str:
        return self.name

    def process(self, item):
        return self.chain.process(item)

    def close(self) -> None:
        """Stop the Blender process and remove the scratch folder."""
        self.chain.close()


class BatchStepActor:
    """Runs one batch step (e.g. ``WriteShards``) after its ``setup``."""

    def __init__(self, step):
        self.step = step
        self.step.setup()

    def process(self, batch):
        return self.step.process(batch)


def start_actor(cls, resources: Resources, *args):
    """A new actor of ``cls`` reserving ``resources``; never restarted by Ray (the runner
    notices a dead actor, records the lost asset and starts a fresh one)."""
    return ray.remote(cls).options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_restarts=0, max_task_retries=0).remote(*args)


def start_steps_actor(steps: list, log_dir: Path, scratch_dir: Path, limits: Limits, space: SpaceGuard | None = None):
    return start_actor(StepsActor, chain_resources(steps), steps, str(log_dir), str(scratch_dir), limits, space)


def dashboard_available() -> bool:
    """Whether this Ray install can serve the dashboard (ray[default] installed)."""
    from ray._private.utils import get_dashboard_dependency_error

    return get_dashboard_dependency_error() is None


#: Where a run records the session directory of the embedded Ray it started (under OUT).
SESSION_RECORD = ".d4d-ray-session"


def session_processes(session_dir: str) -> list[int]:
    """Processes (other than this one) that have a file of a Ray session directory open, or name it
    on their command line: the processes of that session, whatever their titles say."""
    session_dir = session_dir.rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or not ours to look at
            continue
        if session_dir in command or any(f.startswith(session_dir) for f in files):
            found.append(int(entry.name))
    return found


def reap_embedded_ray(out: Path) -> list[int]:
    """Kill what the embedded Ray of an earlier run of ``out`` left running: a driver killed with
    ``kill -9`` cannot stop its Ray, whose dashboard and runtime-env agents then stay up. Call it
    holding the run's lock (so that earlier driver is gone). Returns the pids killed."""
    record = Path(out) / SESSION_RECORD
    if not record.is_file():
        return []
    session_dir = record.read_text().strip()
    pids = session_processes(session_dir) if session_dir.startswith("/") else []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    record.unlink()
    return pids


def init_ray(address: str | None, num_cpus: float, num_gpus: float, out: Path) -> str:
    """Join the cluster at ``address`` (or RAY_ADDRESS, as ``ray job submit`` sets it), else
    start an embedded local Ray with ``num_cpus`` / ``num_gpus`` logical resources and the
    dashboard (on 127.0.0.1 only) when it is installed, recording its session directory under
    ``out`` for ``reap_embedded_ray``. Returns a line describing where it runs."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        where = f"Ray cluster at {address}"
        # A `ray start --head` cluster (Ray 2.60) authenticates with the token in ~/.ray/auth_token:
        # use it when RAY_AUTH_MODE is unset and the token is here, as Ray's own CLI does.
        if maybe_enable_token_auth_if_token_available(warn_if_disabled=False):
            where += " (token authentication)"
        context = ray.init(address=address)
    else:
        dashboard = dashboard_available()
        context = ray.init(num_cpus=max(1, math.ceil(num_cpus)), num_gpus=num_gpus, include_dashboard=dashboard, dashboard_host="127.0.0.1")
        write_bytes_atomic(Path(out) / SESSION_RECORD, ray._private.worker._global_node.get_session_dir_path().encode())
        where = "embedded local Ray" + ("" if dashboard else " (no dashboard: it needs ray[default])")
    resources = ray.cluster_resources()
    line = f"{where}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
    return line + (f", dashboard http://{context.dashboard_url}" if context.dashboard_url else "")
