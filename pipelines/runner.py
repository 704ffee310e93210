"""The curation job's driver: hands assets to a pool of worker actors, journals every outcome,
retries what may succeed next time, batches kept renders into shards, and reports progress.

    summary = run_curation(spec, PipelineConfig(...), out_dir, limit=None, address=None)

Resumable: the manifest (``pipelines.manifest``) is the source of truth. A rerun skips every
asset that has a result, redoes the others, and shards the kept renders not yet in shards; the
shard writers (``pipelines.writers``) skip uids already written, so no run writes a duplicate row.
"""

from __future__ import annotations

import collections
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ray

from d4d import storage
from d4d.curation.sources import FetchError
from d4d.curation.sources.base import invalid_record
from d4d.pipelines.config import PipelineConfig
from d4d.pipelines.console import RunProgress
from d4d.pipelines.manifest import Manifest
from d4d.pipelines.node_check import NodeProbe, make_probe
from d4d.pipelines.output import publish_tables, run_folders
from d4d.pipelines.ray_adapter import init_ray, placeable_workers, shutdown_ray, start_steps_actor, submit_asset
from d4d.pipelines.session import end_session, reap_session, record_session
from d4d.pipelines.sources import SourceSpec, open_source, prepare_source
from d4d.pipelines.space import OutOfSpace, SpaceGuard
from d4d.pipelines.steps import WriteShards, chain_resources, default_steps
from d4d.pipelines.tables import DecisionRows, clip_event, failure_event, problem_event, run_stats, write_tables
from d4d.pipelines.work import WorkItem
from d4d.pipelines.writers import ShardWriters, WriterLost
from d4d.progress import say
from d4d.shards.card import publish_card
from d4d.shards.files import ShardNames
from d4d.untrusted import BadIdentifier, check_identifier, inside

#: A local folder source's digests, kept in OUT so that a rerun reads only new or changed files.
LISTING_DIGESTS = "listing_digests.parquet"


@dataclass
class Layout:
    """Where a run writes, under its output directory (``root``); with an OUT URI (``remote``),
    shards and tables go there and the rest stays in ``root``, the local work folder
    (pipelines.output)."""

    root: Path
    remote: str | None = None

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    @property
    def shards(self) -> Path | str:
        return storage.join(self.remote, "shards") if self.remote else self.root / "shards"

    @property
    def shards_staging(self) -> Path:
        """Where shards are built before their upload to ``remote``."""
        return self.root / "shards-staging"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def scratch(self) -> Path:
        """The workers' temporary pre-check / pre-pass renders; emptied when a run starts."""
        return self.root / "scratch"

    @property
    def previews(self) -> Path:
        """Rejected clips' cheap renders."""
        return self.root / "previews"

    def check(self) -> None:
        """Refuse (SourceError) an output directory whose parts are links that lead out of it:
        d4d writes and deletes only inside OUT."""
        for path in (self.renders, self.previews, self.shards if self.remote is None else self.shards_staging, self.logs, self.scratch):
            if (path.exists() or path.is_symlink()) and not inside(self.root, path):
                raise OutputRefused(f"{path}: a link out of the output directory {self.root}; d4d writes only inside it")


@dataclass
class Slot:
    """One worker actor and the asset it is working on.

    Attributes:
        actor: the StepsActor.
        ready_ref: its ``ready()`` call until the cluster has placed and started it (then None).
        created: when the actor was asked for (time.time()).
        name: "host:pid" once started.
        ref, item, attempt, started: the asset in flight (its ``process`` call), if any.
    """

    actor: object
    ready_ref: object = None
    created: float = 0.0
    name: str = "?"
    ref: object = None
    item: WorkItem | None = None
    attempt: int = 0
    started: float = 0.0


class OutputRefused(Exception):
    """The output directory cannot be used safely (a part of it links elsewhere)."""


class Stopped(Exception):
    """SIGTERM or SIGINT asked the run to stop (``signum``); ``progress`` says how far it got."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.progress = ""

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}" + (f" ({self.progress})" if self.progress else "") + "; rerun the same command to resume"


#: The signals that stop a run cleanly.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


#: The stop signal received while Ray was running, until ``check_stop`` raises it.
_received: dict[str, int] = {}


def _on_stop_signal(signum: int, frame) -> None:
    for sig in STOP_SIGNALS:  # once: a second signal while the run stops its workers and Ray is ignored
        signal.signal(sig, signal.SIG_IGN)
    if not ray.is_initialized():
        raise Stopped(signum)
    # Ray's blocking calls run Python's handlers inside its own (Cython) code, which an exception
    # cannot cross cleanly: note the signal, the driver loop raises it within a second.
    _received["signum"] = signum


def check_stop() -> None:
    """Raise ``Stopped`` if a stop signal came while Ray was running."""
    if "signum" in _received:
        raise Stopped(_received.pop("signum"))


def catch_stop_signals() -> dict:
    """Make SIGTERM and SIGINT stop the run (``Stopped``) in the main thread (``ray.init``
    installs its own SIGTERM handler, so this is called again after it). Returns the handlers
    replaced (empty off the main thread, where Python cannot handle signals)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received.clear()
    return {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS}


class ClusterError(Exception):
    """The cluster cannot run the workers (every new worker dies before it starts)."""


#: Workers that die before answering ``ready``, one after another, before the run gives up.
MAX_FAILED_STARTS = 10


class SourceError(Exception):
    """The source cannot list its assets (missing folder or annotations, duplicate uids)."""


def list_records(spec: SourceSpec, limit: int | None, digest_cache: Path | None = None) -> tuple[list, object]:
    """The source's records in its order, the first ``limit`` of them, and the source (its
    ``fetch`` chooses the node check's probe). A uid that is not a safe name, or that the
    source yields twice, makes that record a ``bad_identifier`` one (its row says why); nothing
    about one record stops the listing. Raises SourceError naming the source when it cannot be
    listed at all."""
    records = []
    seen = set()
    try:
        source = open_source(spec, digest_cache)
        for record in source.records():
            try:
                check_identifier(record.uid, "uid")
                if record.uid in seen:
                    raise BadIdentifier(f"uid {record.uid} appears twice in the source")
            except BadIdentifier as exc:
                record = invalid_record(record.source, record.uid, record.file_identifier, str(exc))
            seen.add(record.uid)
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    except (FetchError, OSError, ValueError) as exc:
        raise SourceError(f"source {spec.kind}{':' + spec.path if spec.path else ''}: {exc}") from None
    for line in getattr(source, "missing", []):
        say(f"missing: {line}")
    problems = collections.Counter(r.problem.reason for r in records if r.problem is not None)
    if problems:
        say(f"{sum(problems.values())} of {len(records)} entries cannot be curated and get a row saying why: "
              + ", ".join(f"{n} {reason}" for reason, n in sorted(problems.items())))
    return records, source


class Run:
    """One invocation of the job over ``records`` (the dispatch loop; see ``run_curation``)."""

    def __init__(self, spec: SourceSpec, config: PipelineConfig, layout: Layout, manifest: Manifest, records: list, captions: dict[str, str],
                 probe: NodeProbe | None = None):
        self.spec, self.config, self.layout, self.manifest = spec, config, layout, manifest
        self.probe = probe
        self.failed_nodes: dict[str, str] = {}  # Ray node id -> why it gets no work
        self.session_dir: str | None = None
        self.records, self.captions = records, captions
        self.steps = default_steps(spec, config, layout.renders)
        self.space = SpaceGuard(layout.root, config.min_free_gb * 1e9)
        self.started = time.time()
        state = manifest.state
        self.queue = collections.deque((r, state.failed_attempts[r.uid] + 1) for r in records if r.uid not in state.assets_done and r.problem is None)
        self.progress = RunProgress(len(records), sum(r.uid in state.assets_done for r in records), self.started)
        self.pending_shards: list[str] = [r["render_dir"] for r in state.unsharded_keeps()]
        self.writers = ShardWriters(config.shard_writers, self._writer_step)
        self.slots: list[Slot] = []
        self.target = 0
        self.failed_starts = 0

    # -- actors --------------------------------------------------------------------------------
    def _new_slot(self) -> Slot:
        """Ask the cluster for a worker; it joins the pool once placed and started (``_started``)."""
        actor = start_steps_actor(self.steps, self.layout.logs, self.layout.scratch, self.config.limits, self.space, self.probe,
                                  avoid=frozenset(self.failed_nodes))
        return Slot(actor, ready_ref=actor.ready.remote(), created=time.time())

    def _top_up(self) -> None:
        """Keep ``target`` workers while there is work: a lost worker (its node gone) is replaced
        by a new actor wherever the cluster has room; it waits, without blocking the run, where
        there is none."""
        while self.queue and len(self.slots) < self.target:
            self.slots.append(self._new_slot())

    def _started(self, slot: Slot) -> None:
        """``slot``'s actor answered ``ready`` (or died before it could: then it is dropped)."""
        try:
            started = ray.get(slot.ready_ref)
        except ray.exceptions.RayActorError as exc:  # placed on a node that was going away, or cannot start at all
            self.failed_starts += 1
            line = str(exc).splitlines()[0][:160]
            if self.failed_starts >= MAX_FAILED_STARTS:
                raise ClusterError(f"{self.failed_starts} workers in a row could not start; the last: {line}") from None
            say(f"worker could not start: {line}; asking for another")
            self._drop([slot], wait_s=0.0)
            return
        slot.name, slot.ready_ref, self.failed_starts = started["name"], None, 0
        if started["problem"] is not None:
            self._node_failed(slot, started["node"], started["problem"])

    def _node_failed(self, slot: Slot, node: str, problem: str) -> None:
        """``slot``'s worker found its node unlike the driver's: it takes no work, and neither
        does any later worker there; the run goes on with the other nodes."""
        if node not in self.failed_nodes:  # its other workers, started before, say the same
            say(f"node {slot.name.rsplit(':', 1)[0]} ({node[:12]}) failed its check and gets no work: {problem}")
        self.failed_nodes[node] = problem
        self.writers.avoid = frozenset(self.failed_nodes)
        self._drop([slot], wait_s=0.0)
        room = placeable_workers(chain_resources(self.steps), WriteShards.resources.times(self.writers.count), avoid=self.writers.avoid)
        if room < 1:
            reasons = "; ".join(f"{n[:12]}: {why}" for n, why in self.failed_nodes.items())
            raise ClusterError(f"no node left that passes the node check ({reasons})")
        self.target = min(self.target, room)

    def _drop(self, slots: list[Slot], wait_s: float) -> None:
        """Stop ``slots``' workers (each stops its Blender process within ``wait_s`` seconds, then
        is killed; Blender dies with it: PR_SET_PDEATHSIG) and take them out of the pool."""
        if wait_s > 0:
            closing = [slot.actor.close.remote() for slot in slots if slot.ready_ref is None]
            if closing:
                ray.wait(closing, num_returns=len(closing), timeout=wait_s)
        for slot in slots:
            ray.kill(slot.actor, no_restart=True)
        self.slots = [s for s in self.slots if not any(s is d for d in slots)]

    def _retire_idle(self) -> None:
        """Once nothing is queued, stop the idle workers: their CPUs go to the shard writer (on a
        cluster with no room to spare it would otherwise wait for ever); a retry that comes
        back to the queue gets a new worker from ``_top_up``."""
        if not self.queue:
            idle = [s for s in self.slots if s.ref is None and s.ready_ref is None]
            if idle:
                self._drop(idle, wait_s=10.0)

    def _stop_workers(self, wait_s: float = 30.0) -> None:
        self._drop(list(self.slots), wait_s)

    # -- outcomes ------------------------------------------------------------------------------
    def _retry(self, item: WorkItem, attempt: int, stage: str, reason: str, kind: str, detail: str) -> None:
        self.manifest.append({"event": "attempt_failed", "uid": item.uid, "attempt": attempt, "stage": stage, "reason": reason, "error_kind": kind, "detail": detail})
        say(f"retry {item.name[:40]}: attempt {attempt}/{self.config.max_attempts} failed at {stage}: {detail[:120]}")
        self.queue.append((item.record, attempt + 1))

    def _finish(self, item: WorkItem, attempt: int, worker: str) -> None:
        """Journal a finished asset: its clips' results (a clip that failed in a way worth
        another attempt sends the asset back to the queue, its decided clips kept), or its failure."""
        last_try = attempt >= self.config.max_attempts
        if item.failure is not None:
            failure = item.failure
            if failure.retryable and not last_try:
                return self._retry(item, attempt, failure.stage, failure.reason, failure.kind, failure.detail)
            self.manifest.append(failure_event(item, attempt, worker))
        else:
            retry = [c for c in item.clips if c.decision.decision == "failed" and c.retryable and not last_try]
            for clip in item.clips:
                if not any(clip is r for r in retry):
                    self.manifest.append(clip_event(item, clip, attempt, worker))
            if retry:
                first = retry[0]
                return self._retry(item, attempt, first.stage, first.decision.reason, first.decision.measures.get("error_kind", ""),
                                   f"clip {first.clip_id}: {first.decision.detail}")
        state = self.manifest.state
        events = [state.results[uid] for uid in sorted(state.clips_of(item.uid))]
        self.manifest.append({"event": "asset_done", "uid": item.uid, "clips": [e.uid for e in events]})
        self.progress.asset(item, events, node=worker.rsplit(":", 1)[0])
        self.pending_shards += [e.render_dir for e in events if e.decision == "keep" and e.uid not in state.sharded]

    def _lost(self, slot: Slot, kind: str, detail: str) -> None:
        """The worker died (or overran its budget) with an asset in flight: that attempt is lost
        and retried within --max-attempts; ``_top_up`` replaces the worker."""
        item = slot.item
        item.fail("worker", "worker_lost", kind, detail, retryable=True)
        item.timings["worker"] = time.time() - slot.started
        self._drop([slot], wait_s=0.0)
        self._finish(item, slot.attempt, slot.name)

    # -- shards --------------------------------------------------------------------------------
    def _writer_step(self, k: int, count: int) -> WriteShards:
        """Shard writer k of ``count`` (pipelines.writers): shard names and a staging folder of its own."""
        return WriteShards(self.layout.shards, self.config.codec, self.config.max_shard_mb, self.space, self.layout.shards_staging / f"writer-{k}",
                           ShardNames(k, count))

    def _maybe_write_shards(self, final: bool) -> None:
        self.pending_shards = self.writers.submit(self.pending_shards, self.config.shard_batch, final)

    def _shards_written(self, ref) -> None:
        try:
            k, batch, report = self.writers.result(ref)
        except WriterLost as lost:  # its node went away: a new writer takes the batch again
            say(f"shard writer lost ({lost.line}); writing its {len(lost.batch)} renders again with a new one")
            self.pending_shards = lost.batch + self.pending_shards
            return  # write_shards skips what the lost writer published: no row twice
        done = report["written"] + report["skipped"]
        if done:
            self.manifest.append({"event": "sharded", "uids": done, "shards": report["shards"]})
            self._remove_sharded_renders(batch, set(done))
        if report["stop"]:
            raise OutOfSpace(report["stop"])
        for uid, reason in report["failed"].items():
            event = {**self.manifest.state.unsharded[uid], "decision": "failed", "reason": "shard_failed", "stage": "shards", "error_kind": "shard_failed", "detail": reason}
            self.manifest.append(event)
            say(f"shard failed {uid[:16]}: {reason[:160]}")
        writer = f" (writer {k + 1} of {self.writers.count})" if self.writers.count > 1 else ""
        say(f"shards{writer}: {len(report['written'])} rows written, {len(report['skipped'])} already present, {len(report['shards'])} new shard files")

    def _remove_sharded_renders(self, batch: list[str], uids: set[str]) -> None:
        """Unless --keep-renders: remove the quality renders of ``batch`` whose ``uids`` are journaled as sharded."""
        if self.config.keep_renders:
            return
        for render_dir in batch:
            path = Path(render_dir)
            if path.name in uids and path.parent == self.layout.renders and inside(self.layout.renders, path):
                shutil.rmtree(path, ignore_errors=True)

    def _rewrite_card(self) -> None:
        """With several shard writers, the dataset card once they are all done: each rewrote it
        after its own shards and may have missed another's (OutOfSpace when OUT cannot take it)."""
        if self.writers.count == 1 or not self.manifest.state.sharded:
            return
        try:
            publish_card(self.layout.shards, self.layout.shards_staging)
        except (OSError, ValueError) as exc:  # ValueError: the URI (its bucket) went away
            raise OutOfSpace(f"OUT cannot be written: the dataset card of {self.layout.shards} ({str(exc).splitlines()[0][:200]}); "
                             "rerun the same command to finish") from None

    # -- the loop --------------------------------------------------------------------------
    def _refresh_tables(self) -> None:
        """Rewrite the tables from the manifest (OutOfSpace when OUT cannot take them), and the
        embedded Ray's session record (its processes change as workers start)."""
        if self.session_dir is not None:
            record_session(self.layout.root, self.session_dir)
        stats = run_stats(self.manifest.state, len(self.records), self.started, time.time() - self.started, self.config.workers)
        stats["recent"] = self.progress.recent.snapshot(self.progress.total - self.progress.done, time.time())
        try:
            write_tables(self.layout.root, self.manifest.state, stats)
            if self.layout.remote is not None:
                publish_tables(self.layout.root, self.layout.remote)
        except OSError as exc:
            line = self.space.stop_line(exc)
            if line is None:
                raise
            raise OutOfSpace(line) from None

    def _record_problems(self) -> None:
        """Rows for the source's entries that cannot be curated (bad identifiers, broken links, duplicates)."""
        for record in self.records:
            if record.problem is not None and record.uid not in self.manifest.state.assets_done:
                item = WorkItem(record)
                self.manifest.append(problem_event(item))
                self.manifest.append({"event": "asset_done", "uid": record.uid, "clips": [record.uid]})
                self.progress.asset(item, [self.manifest.state.results[record.uid]], judged=False)

    def _plan_workers(self) -> None:
        """The shard writers: --shard-writers, as many as the cluster can place beside one worker;
        ``target``: --workers, as many as there are assets to do, and as many as the cluster can
        place beside the shard writers (asking for more would leave actors pending for ever)."""
        worker, count = chain_resources(self.steps), self.config.shard_writers
        while count > 1 and placeable_workers(worker, WriteShards.resources.times(count)) < 1:
            count -= 1
        if count < self.config.shard_writers:
            say(f"--shard-writers {self.config.shard_writers}: the cluster has room for {count} beside a worker; using {count}")
            self.writers = ShardWriters(count, self._writer_step)
        wanted = min(self.config.workers, len(self.queue))
        room = placeable_workers(worker, WriteShards.resources.times(count))
        self.target = max(1, min(wanted, room)) if wanted else 0
        if self.target < wanted:
            beside = "the shard writer" if count == 1 else f"the {count} shard writers"
            say(f"--workers {self.config.workers}: the cluster has room for {room} workers of {worker} beside {beside}; using {self.target}")

    def _waiting_line(self) -> None:
        """Say so when workers have waited long for the cluster to place them (a lost node, a busy cluster)."""
        waiting = [s for s in self.slots if s.ready_ref is not None and time.time() - s.created > self.progress.every_s]
        if waiting:
            say(f"{len(waiting)} of {len(self.slots)} workers are waiting for the cluster to place them; the others go on")

    def has_work(self) -> bool:
        """Whether an asset is left to curate or a kept render to shard (else no Ray is needed)."""
        return bool(self.queue or self.pending_shards)

    def tables_only(self) -> dict:
        """A rerun with nothing left to do, without Ray: the rows of entries that cannot be
        curated, the tables; returns stats.json's content."""
        self._record_problems()
        say(f"{len(self.records)} assets: {self.progress.done} already finished, none to do (Ray not started)")
        self._refresh_tables()
        return run_stats(self.manifest.state, len(self.records), self.started, time.time() - self.started, self.config.workers)

    def run(self, session_dir: str | None = None) -> dict:
        """Curate what is left on the Ray cluster this process joined (``session_dir``: the
        embedded Ray's session, None on a cluster); returns stats.json's content."""
        self.session_dir = session_dir
        self.started = time.time()
        self.progress.restart(self.started)
        self._record_problems()
        self._plan_workers()
        try:
            if self.queue or self.pending_shards:
                self.writers.start()
            self._top_up()
            starting = [s.ready_ref for s in self.slots]
            if starting:
                ray.wait(starting, num_returns=len(starting), timeout=60.0)
            if self.session_dir is not None:
                record_session(self.layout.root, self.session_dir)
            say(f"{len(self.records)} assets: {self.progress.done} already finished, {len(self.queue)} to do on {self.target} workers")
            if self.queue:
                self.progress.open()
            while self.queue or any(s.ref is not None for s in self.slots) or self.pending_shards or self.writers.busy():
                check_stop()
                self._top_up()
                self._retire_idle()
                for slot in self.slots:
                    if slot.ref is None and slot.ready_ref is None and self.queue:
                        self.space.check()
                        record, slot.attempt = self.queue.popleft()
                        done = self.manifest.state.clips_of(record.uid)
                        slot.item, slot.started = WorkItem(record, caption=self.captions.get(record.uid), done_clips=done), time.time()
                        slot.ref = submit_asset(slot.actor, self.steps, slot.item)
                self._maybe_write_shards(final=not self.queue and not any(s.ref is not None for s in self.slots))
                writing = self.writers.refs()
                refs = [s.ref for s in self.slots if s.ref is not None] + [s.ready_ref for s in self.slots if s.ready_ref is not None] + writing
                ready, _ = ray.wait(refs, num_returns=1, timeout=1.0) if refs else ([], [])
                for ref in ready:
                    if ref in writing:
                        self._shards_written(ref)
                        continue
                    starting = next((s for s in self.slots if s.ready_ref == ref), None)
                    if starting is not None:
                        self._started(starting)
                        continue
                    slot = next(s for s in self.slots if s.ref == ref)
                    try:
                        item = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        self._lost(slot, type(exc).__name__, f"worker {slot.name} died: {str(exc).splitlines()[0][:200]}")
                        continue
                    slot.ref = slot.item = None
                    if item.stop is not None:  # OUT could not be written: the run's failure, not the asset's
                        raise OutOfSpace(item.stop)
                    self._finish(item, slot.attempt, slot.name)
                for slot in list(self.slots):
                    if slot.ref is not None and time.time() - slot.started > self.config.asset_budget_s():
                        self._lost(slot, "timeout", f"worker {slot.name} exceeded the asset budget of {self.config.asset_budget_s():.0f}s and was killed")
                if self.progress.tick():
                    self._waiting_line()
                    self._refresh_tables()
            self._rewrite_card()
        except BaseException as exc:
            self.progress.close()
            if isinstance(exc, Stopped):
                exc.progress = f"{self.progress.done} of {len(self.records)} assets finished"
            self._stop_workers(wait_s=0.0)
            try:  # the tables as far as the journal goes; when OUT is full the next run writes them
                self._refresh_tables()
            except OutOfSpace:
                pass
            raise
        self.progress.close()
        self._stop_workers()
        shutil.rmtree(self.layout.scratch, ignore_errors=True)  # what workers killed on the way left there
        self._refresh_tables()
        return run_stats(self.manifest.state, len(self.records), self.started, time.time() - self.started, self.config.workers)


def record_captions(records: list, captions_csv: str | Path | None) -> dict[str, str]:
    """uid -> Cap3D caption (no prefix: training adds "a dynamic asset, ") for the records that have one."""
    if captions_csv is None:
        return {}
    from d4d.curation.captions import load_cap3d

    keys = set()
    for r in records:
        keys.update(k.lower() for k in (r.uid, r.sha256, r.file_identifier.rstrip("/").rsplit("/", 1)[-1]) if k)
    captions = load_cap3d(captions_csv, keys)
    found = {r.uid: captions.raw_caption(r) for r in records}
    return {uid: text for uid, text in found.items() if text is not None}


def retry_failed_assets(manifest: Manifest, records: list, reasons: frozenset[str]) -> None:
    """Journal a ``retry`` of the source's finished assets that have a failed row of one of
    ``reasons`` (any, when empty): the run then redoes their failed clips (or the whole asset)
    with a full --max-attempts budget, keeping their decided clips. An entry the source still
    cannot hand over (a broken link, a file still over --max-file-mb) is not retried."""
    curatable = {r.uid for r in records if r.problem is None}
    uids = [uid for uid in manifest.state.failed_assets(reasons) if uid in curatable]
    if uids:
        manifest.append({"event": "retry", "uids": uids, "reasons": sorted(reasons)})
    say(f"--retry-failed {' '.join(sorted(reasons)) or '(any reason)'}: {len(uids)} assets with failed rows redone")


def _run_locked(spec: SourceSpec, config: PipelineConfig, layout: Layout, manifest: Manifest, records: list, captions: dict, address: str | None,
                retry_failed: frozenset[str] | None = None, probe: NodeProbe | None = None) -> dict:
    """The run itself, holding OUT's lock: reap what a killed run left, start Ray, run (every
    worker checking its node against ``probe`` first), stop Ray."""
    first = manifest.state.runs[0] if manifest.state.runs else None
    if first is not None and first.get("config") != config.to_json():
        say("note: settings differ from the first run in this directory; finished assets keep their earlier results")
    shutil.rmtree(layout.scratch, ignore_errors=True)  # left by killed workers; no other run holds OUT
    reaped = reap_session(layout.root)
    if reaped:
        say(f"stopped {len(reaped)} processes the embedded Ray of a killed earlier run left running")
    manifest.append({"event": "run", "source": vars(spec), "config": config.to_json(), "assets": len(records)})
    if retry_failed is not None:
        retry_failed_assets(manifest, records, retry_failed)
    run = Run(spec, config, layout, manifest, records, captions, probe)
    if not run.has_work():
        return run.tables_only()
    worker_needs = chain_resources(run.steps)
    session_dir = None
    try:
        where, session_dir = init_ray(address, config.workers * worker_needs.num_cpus + WriteShards.resources.times(config.shard_writers).num_cpus,
                                      config.workers * worker_needs.num_gpus, layout.root)
        catch_stop_signals()
        say(f"d4d-curate: {where}")
        stats = run.run(session_dir)
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:  # stopping Ray is not to be cut short
                signal.signal(sig, signal.SIG_IGN)
        shutdown_ray()
        if session_dir is not None:
            end_session(layout.root, session_dir)
    return stats


def run_curation(
    spec: SourceSpec, config: PipelineConfig, out_dir: Path | str, limit: int | None = None, address: str | None = None, captions_csv: str | Path | None = None,
    retry_failed: frozenset[str] | None = None, work_dir: Path | None = None,
) -> dict:
    """Run (or resume) the curation job from ``spec`` into ``out_dir``; returns stats.json's content.

    ``captions_csv``: a Cap3D caption file; each kept asset's caption goes into its asset.json
    and so into its shard row. ``retry_failed``: redo the failed rows of these reasons (any,
    when empty; None: none), see ``retry_failed_assets``.

    Writes ``out_dir``/manifest.jsonl, renders/<uid> (kept assets' quality renders),
    shards/ (Parquet, docs/shards.md), decisions.parquet, failures.parquet, stats.json, logs/.
    ``out_dir`` may be a URI (s3://, gs://): shards and tables go there, the rest to ``work_dir``
    (pipelines.output; OutputRefused when either cannot be used).

    Raises ``Stopped`` on SIGTERM / SIGINT (workers, Blender and the embedded Ray stopped, the
    journal intact), ``OutOfSpace`` when OUT cannot be written.
    """
    handlers = catch_stop_signals()
    try:
        return _run_curation(spec, config, out_dir, limit, address, captions_csv, retry_failed, work_dir)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _run_curation(spec: SourceSpec, config: PipelineConfig, out_dir: Path | str, limit: int | None, address: str | None, captions_csv: str | Path | None,
                  retry_failed: frozenset[str] | None, work_dir: Path | None = None) -> dict:
    try:
        root, remote = run_folders(out_dir, work_dir)
    except ValueError as exc:
        raise OutputRefused(str(exc)) from None
    layout = Layout(root.resolve(), remote)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.check()
    space = SpaceGuard(layout.root, config.min_free_gb * 1e9)
    space.check()
    prepare_source(spec)
    records, source = list_records(spec, limit, layout.root / LISTING_DIGESTS)
    captions = record_captions(records, captions_csv)
    try:
        with Manifest(layout.root, rows=DecisionRows) as manifest:
            probe = make_probe(layout.root, records, None if spec.online else source.fetch)
            stats = _run_locked(spec, config, layout, manifest, records, captions, address, retry_failed, probe)
    except OSError as exc:  # the journal, the session record: OUT cannot be written
        line = space.stop_line(exc)
        if line is None:
            raise
        raise OutOfSpace(line) from None
    not_curated = ", ".join(f"{n} {reason}" for reason, n in stats["assets"]["not_curated"].items())
    decided = ", ".join(f"{n} {decision}" for decision, n in sorted(stats["clips"]["by_decision"].items())) or "none decided"
    this_run = (f"{stats['finished_this_run']} assets this run at {stats['assets_per_hour'] or 0:.0f} assets/h" if stats["finished_this_run"]
                else "nothing left to do this run")
    say(
        f"done: {stats['finished']}/{stats['total_assets']} assets, {stats['clips']['judged']} clips ({decided}), "
        f"{stats['assets']['failed_whole']} assets failed whole, {stats['in_shards']} clips in shards; "
        + (f"entries not curated: {not_curated}; " if not_curated else "") +
        f"{this_run}; tables in {layout.remote or layout.root}",
    )
    return stats
