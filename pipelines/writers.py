"""The run's shard writers: ``--shard-writers`` actors that encode batches of kept renders into
the run's shards at the same time, one batch each, every batch going to the free writer that
has waited longest.

Writer k of n takes shard names of its own (shards.files.ShardNames: the indices equal to k
mod n) and its own staging folder, so no two writers ever write the same shard file. A writer
lost with its node is replaced by a new actor with the same names at the next batch; its batch
is handed back to be written again (write_shards skips the rows it had published).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ray

from d4d.pipelines.ray_adapter import BatchStepActor, start_actor, submit_batch
from d4d.pipelines.steps import WriteShards


@dataclass
class Writer:
    """One shard writer: ``k`` (its names), its actor (None until started, and once lost), and
    the batch in flight (render directories) with its ``process`` call."""

    k: int
    actor: object = None
    ref: object = None
    batch: list[str] = field(default_factory=list)


class ShardWriters:
    """``count`` shard writers; ``make_step(k, count)`` builds writer k's ``WriteShards``."""

    def __init__(self, count: int, make_step: Callable[[int, int], WriteShards]):
        self.count, self.make_step = count, make_step
        self.avoid: frozenset[str] = frozenset()  # nodes that failed their check (pipelines.node_check): no writer starts there
        self.writers = [Writer(k) for k in range(count)]  # the longest free first

    def start(self) -> None:
        """Start the writers that are not running (the run does before its workers, so that the
        writers have their CPUs)."""
        for writer in self.writers:
            if writer.actor is None:
                step = self.make_step(writer.k, self.count)
                writer.actor = start_actor(BatchStepActor, step.resources, step, avoid=self.avoid)

    def busy(self) -> bool:
        return any(w.ref is not None for w in self.writers)

    def refs(self) -> list:
        """The ``process`` calls in flight."""
        return [w.ref for w in self.writers if w.ref is not None]

    def submit(self, pending: list[str], batch_size: int, final: bool) -> list[str]:
        """Hand ``pending`` renders to the free writers in batches of ``batch_size``, or of an even
        share of ``pending`` when more wait; when ``final`` (no more to come), all of them in even
        shares. Returns the renders still pending."""
        free = [w for w in self.writers if w.ref is None]
        if not free:
            return pending
        share = -(-len(pending) // len(free))
        size = share if final else max(batch_size, share)
        for writer in free:
            if not pending or (len(pending) < batch_size and not final):
                break
            self.start()
            writer.batch, pending = pending[:size], pending[size:]
            writer.ref = submit_batch(writer.actor, WriteShards, writer.batch)
            self.writers.remove(writer)
            self.writers.append(writer)
        return pending

    def result(self, ref) -> tuple[int, list[str], dict]:
        """The call ``ref``'s writer (k), the batch it took and its report (``WriteShards.process``).
        Raises WriterLost when the writer died (its actor is killed; the next ``submit`` starts
        another with its names)."""
        writer = next(w for w in self.writers if w.ref == ref)
        batch, writer.ref, writer.batch = writer.batch, None, []
        try:
            return writer.k, batch, ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            ray.kill(writer.actor, no_restart=True)
            writer.actor = None
            raise WriterLost(writer.k, batch, str(exc).splitlines()[0][:120]) from None


class WriterLost(Exception):
    """Shard writer ``k`` died (its node went away) writing ``batch``; ``line`` says how."""

    def __init__(self, k: int, batch: list[str], line: str):
        super().__init__(line)
        self.k, self.batch, self.line = k, batch, line
