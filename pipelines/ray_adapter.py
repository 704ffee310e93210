"""The one place that maps steps onto Ray: actors that hold set-up steps, and Ray start-up.

``StepsActor`` wraps a ``StepChain`` (the per-asset steps and one warm Blender ``Renderer``)
and ``BatchStepActor`` one batch step (a shard writer). ``start_actor`` gives each the
resources its steps declare. Nothing else in ``pipelines`` calls ``ray.remote``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from pathlib import Path

import ray
from ray._private import ray_constants
from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR, maybe_enable_token_auth_if_token_available
from ray._raylet import Config

from d4d.pipelines.chain import StepChain
from d4d.pipelines.node_check import NodeProbe, check_node
from d4d.pipelines.session import record_session
from d4d.pipelines.space import SpaceGuard
from d4d.pipelines.steps import Fetch, Resources, WorkerContext, chain_resources
from d4d.progress import library_level
from d4d.rendering.api import Limits
from d4d.untrusted import printable


class StepsActor:
    """Runs the per-asset steps; one warm Blender process per actor (isolated by Renderer)."""

    def __init__(self, steps: list, log_dir: str, scratch_dir: str, limits: Limits, space: SpaceGuard | None, probe: NodeProbe | None = None):
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.node_id = ray.get_runtime_context().get_node_id()
        self.probe = probe
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        # Named by node and process: nodes of a cluster share OUT, and their pids may be equal.
        self.chain = StepChain(steps, WorkerContext(Path(log_dir) / f"node-{self.node_id[:12]}-worker-{os.getpid()}", Path(scratch_dir), limits, space))
        self.chain.setup()

    def __repr__(self) -> str:  # the prefix of its log lines on the driver's console and in the dashboard
        return f"d4d-worker {self.name}"

    def ready(self) -> dict:
        """Started: its ``name``, its ``node`` (Ray's node id) and the ``problem`` its node has
        (``pipelines.node_check``; None when it may take work)."""
        fetch = next((step.source.fetch for step in self.chain.steps if isinstance(step, Fetch)), None)
        problem = None if self.probe is None else check_node(self.probe, fetch)
        return {"name": self.name, "node": self.node_id, "problem": problem}

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

    def __repr__(self) -> str:
        return f"d4d-{self.step.name}"

    def process(self, batch):
        return self.step.process(batch)


def task_name(steps: str, what: str) -> str:
    """A Ray task's name as the dashboard and ``ray list tasks`` show it: the steps and what they
    work on (an asset's name and uid, untrusted text made printable and cut to 100 characters)."""
    return f"{steps} {printable(what, 100)}"


def submit_asset(actor, steps: list, item):
    """``actor.process(item)`` as a task named by the steps and the asset (``task_name``)."""
    name = task_name("+".join(step.name for step in steps), f"{item.name} ({item.uid[:16]})")
    return actor.process.options(name=name).remote(item)


def submit_batch(actor, step, batch: list):
    """``actor.process(batch)`` as a task named by the step and the batch's size."""
    return actor.process.options(name=task_name(step.name, f"{len(batch)} renders")).remote(batch)


def placeable_workers(worker: Resources, reserved: Resources, avoid: frozenset[str] = frozenset()) -> int:
    """How many workers needing ``worker`` the cluster's nodes (alive now, none of ``avoid``)
    can hold beside ``reserved`` (the shard writers), counted node by node: a worker cannot
    span two nodes."""
    room = 0
    left = {"CPU": reserved.num_cpus, "GPU": reserved.num_gpus}
    for node in ray.nodes():
        if not node.get("Alive") or node.get("NodeID") in avoid:
            continue
        have = {k: float(node.get("Resources", {}).get(k, 0.0)) for k in ("CPU", "GPU")}
        for k in have:  # the writers take their share from the first nodes that have it
            take = min(have[k], left[k])
            have[k], left[k] = have[k] - take, left[k] - take
        fits = [have[k] // need for k, need in (("CPU", worker.num_cpus), ("GPU", worker.num_gpus)) if need > 0]
        room += int(min(fits)) if fits else 1_000_000
    return room


def start_actor(cls, resources: Resources, *args, avoid: frozenset[str] = frozenset()):
    """A new actor of ``cls`` reserving ``resources``, on none of the nodes ``avoid`` (Ray node
    ids: nodes that failed their check); never restarted by Ray (the runner notices a dead
    actor, records the lost asset and starts a fresh one)."""
    options = dict(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_restarts=0, max_task_retries=0)
    if avoid:
        options["label_selector"] = {"ray.io/node-id": f"!in({','.join(sorted(avoid))})"}
    return ray.remote(cls).options(**options).remote(*args)


def start_steps_actor(steps: list, log_dir: Path, scratch_dir: Path, limits: Limits, space: SpaceGuard | None = None, probe: NodeProbe | None = None,
                      avoid: frozenset[str] = frozenset()):
    """A worker for ``steps`` that checks its node against ``probe`` when it starts (``ready``)."""
    return start_actor(StepsActor, chain_resources(steps), steps, str(log_dir), str(scratch_dir), limits, space, probe, avoid=avoid)


def dashboard_available() -> bool:
    """Whether this Ray install can serve the dashboard (ray[default] installed)."""
    from ray._private.utils import get_dashboard_dependency_error

    return get_dashboard_dependency_error() is None


@contextlib.contextmanager
def loopback_only():
    """While starting an embedded Ray: every Ray process (GCS, raylet, agents, workers) listens on
    127.0.0.1 only. Ray 2.60 binds all interfaces unless its node address is loopback, and
    ``ray.init`` turns ``_node_ip_address="127.0.0.1"`` into the machine's address; its node
    address is loopback only where Ray believes clusters are off (the
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch, read by the driver and by the processes it starts)."""
    saved_env, saved_flag = os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = saved_env


#: RAY_AUTH_MODE as it was before ``init_ray`` (Ray sets it to "token" in this process's
#: environment when it turns token authentication on); ``shutdown_ray`` puts it back.
_AUTH_MODE_BEFORE: list[str | None] = []


def shutdown_ray() -> None:
    """``ray.shutdown()``, and RAY_AUTH_MODE as it was before ``init_ray``: token authentication,
    turned on for this cluster, does not leak into a later cluster of the same process (an
    in-process test cluster without tokens) or into the processes it starts."""
    ray.shutdown()
    if _AUTH_MODE_BEFORE:
        before = _AUTH_MODE_BEFORE.pop()
        _AUTH_MODE_BEFORE.clear()
        if before is None:
            os.environ.pop(AUTH_MODE_ENV_VAR, None)
        else:
            os.environ[AUTH_MODE_ENV_VAR] = before
        Config.initialize("")  # Ray caches its configuration from the environment


def init_ray(address: str | None, num_cpus: float, num_gpus: float, out: Path) -> tuple[str, str | None]:
    """Join the cluster at ``address`` (or RAY_ADDRESS, as ``ray job submit`` sets it), else
    start an embedded local Ray with ``num_cpus`` / ``num_gpus`` logical resources, listening on
    127.0.0.1 only (``loopback_only``; the dashboard too, when installed), and record its session
    under ``out`` (``pipelines.session``). Returns a line describing where it runs and the
    embedded session's directory (None on a cluster). ``shutdown_ray`` ends it. Ray's own
    console lines show at ``d4d.progress.library_level`` (errors only unless ``--verbose``)."""
    address = address or os.environ.get("RAY_ADDRESS")
    level = library_level()
    logging.getLogger("ray").setLevel(level)  # Ray set its logger up when imported; its token lines come before ray.init
    session_dir = None
    _AUTH_MODE_BEFORE[:] = [os.environ.get(AUTH_MODE_ENV_VAR)]
    if address:
        where = f"Ray cluster at {address}"
        # A `ray start --head` cluster (Ray 2.60) authenticates with the token in ~/.ray/auth_token:
        # use it when RAY_AUTH_MODE is unset and the token is here, as Ray's own CLI does.
        if maybe_enable_token_auth_if_token_available(warn_if_disabled=False):
            where += " (token authentication)"
        context = ray.init(address=address, logging_level=level)
    else:
        dashboard = dashboard_available()
        with loopback_only():
            context = ray.init(num_cpus=max(1, math.ceil(num_cpus)), num_gpus=num_gpus, include_dashboard=dashboard, dashboard_host="127.0.0.1",
                               logging_level=level)
        session_dir = ray._private.worker._global_node.get_session_dir_path()
        record_session(out, session_dir)
        where = "embedded local Ray on 127.0.0.1" + ("" if dashboard else " (no dashboard: it needs ray[default])")
    resources = ray.cluster_resources()
    line = f"{where}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
    return line + (f", dashboard http://{context.dashboard_url}" if context.dashboard_url else ""), session_dir
