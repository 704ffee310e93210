"""The one place that maps steps onto Ray: actors that hold set-up steps, and Ray start-up.

``StepsActor`` wraps a ``StepChain`` (the per-asset steps and one warm Blender ``Renderer``)
and ``BatchStepActor`` one batch step (the shard writer). ``start_actor`` gives each the
resources its steps declare. Nothing else in ``pipelines`` calls ``ray.remote``.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import ray

from d4d.pipelines.chain import StepChain
from d4d.pipelines.steps import Resources, WorkerContext, chain_resources
from d4d.rendering.api import Limits


class StepsActor:
    """Runs the per-asset steps; one warm Blender process per actor (isolated by Renderer)."""

    def __init__(self, steps: list, log_dir: str, scratch_dir: str, limits: Limits):
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        self.chain = StepChain(steps, WorkerContext(Path(log_dir) / f"worker-{os.getpid()}", Path(scratch_dir), limits))
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


def start_steps_actor(steps: list, log_dir: Path, scratch_dir: Path, limits: Limits):
    return start_actor(StepsActor, chain_resources(steps), steps, str(log_dir), str(scratch_dir), limits)


def dashboard_available() -> bool:
    """Whether this Ray install can serve the dashboard (ray[default] installed)."""
    from ray._private.utils import get_dashboard_dependency_error

    return get_dashboard_dependency_error() is None


def init_ray(address: str | None, num_cpus: float, num_gpus: float) -> str:
    """Join the cluster at ``address`` (or RAY_ADDRESS, as ``ray job submit`` sets it), else
    start an embedded local Ray with ``num_cpus`` / ``num_gpus`` logical resources and the
    dashboard when it is installed. Returns a line describing where it runs."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = ray.init(address=address)
        where = f"Ray cluster at {address}"
    else:
        dashboard = dashboard_available()
        context = ray.init(num_cpus=max(1, math.ceil(num_cpus)), num_gpus=num_gpus, include_dashboard=dashboard)
        where = "embedded local Ray" + ("" if dashboard else " (no dashboard: it needs ray[default])")
    resources = ray.cluster_resources()
    line = f"{where}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
    return line + (f", dashboard http://{context.dashboard_url}" if context.dashboard_url else "")
