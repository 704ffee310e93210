"""PyTorch reader: an IterableDataset streaming shards, sharded over ranks and workers, resumable.

    dataset = ShardDataset("shards/", videos=("dynamic", "static"), batch_size=8, seed=0)
    loader = DataLoader(dataset, batch_size=8, num_workers=4)
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader: ...

Each sample is the dict documented in shards/decode.py plus ``position`` (int, its index in
this rank's sequence for the epoch). Order, rank and worker split: shards/order.py.

Resume: ``state_dict(consumed=n)`` after the loader delivered n samples of the current epoch
(with ``num_workers=0`` the dataset counts them itself and ``consumed`` may be left out);
``load_state_dict`` on a fresh dataset makes the next iteration of that epoch continue with
sample n. Pass the DataLoader's batch size as ``batch_size`` so the loader's round-robin over
workers reproduces the rank's sequence; do not use ``persistent_workers`` (workers would not
see ``set_epoch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from d4d.shards.checks import CHECKED_COLUMNS, check_table
from d4d.shards.decode import as_second_orbit, decode_row, row_columns, second_orbit_videos, video_columns
from d4d.shards.files import list_shards
from d4d.shards.order import epoch_order, rank_share, worker_share
from d4d.shards.schema import SCALAR_COLUMNS, schema_problems, tensors_in, upgrade_table
from d4d.untrusted import printable

STATE_VERSION = 1


def open_shards(shards: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shard files of a directory, a file, or a list of them, after checking each one's schema
    and the values of every row (``check_values``); raises ValueError naming the first invalid
    shard (and row)."""
    items = [shards] if isinstance(shards, (str, Path)) else list(shards)
    paths = [p for item in items for p in list_shards(item)]
    if not paths:
        raise ValueError(f"no shards (part-*.parquet) in {', '.join(map(str, items))}")
    for path in paths:
        try:
            problems = schema_problems(pq.read_schema(path))
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: cannot open as Parquet ({exc})") from None
        if problems:
            raise ValueError(f"{path}: not a valid shard: {problems[0]}")
        check_values(path)
    return paths


def check_values(path: Path) -> None:
    """Check the values of every row of a shard (shards.checks, all columns but the payloads:
    videos, asset.json, tensors), one row group at a time; ValueError ``FILE: row I (uid U):
    reason`` for the first problem."""
    parquet = pq.ParquetFile(path)
    columns = [c for c in CHECKED_COLUMNS if c in parquet.schema_arrow.names]
    first = 0
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group, columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: row group {group} unreadable ({exc})") from None
        check_table(table, str(path), first)
        first += table.num_rows


def resolve_tensors(paths: list[Path], tensors: Sequence[str] | None) -> tuple[str, ...]:
    """``None``: the tensor columns every shard has. Otherwise check each shard has those asked for."""
    present = [set(tensors_in(pq.read_schema(p))) for p in paths]
    if tensors is None:
        return tuple(sorted(set.intersection(*present)))
    for path, have in zip(paths, present):
        missing = set(tensors) - have
        if missing:
            raise ValueError(f"{path}: has no tensor columns {sorted(missing)}")
    return tuple(tensors)


def build_filter(filter: pc.Expression | None, min_motion_magnitude: float | None) -> pc.Expression | None:
    """``filter`` and (if set) motion_magnitude >= min_motion_magnitude (rows with none fail it)."""
    if min_motion_magnitude is not None:
        motion = pc.field("motion_magnitude") >= min_motion_magnitude
        filter = motion if filter is None else filter & motion
    return filter


def sample_index(paths: list[Path], filter: pc.Expression | None) -> dict[str, np.ndarray]:
    """Per kept sample: ``file`` (index into paths), ``group`` (row group in its file), ``row``
    (row in that group) and ``global_group`` (a data-set-wide row-group id). Int arrays [N]."""
    parts, group_offset = [], 0
    for file_index, path in enumerate(paths):
        parquet = pq.ParquetFile(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        group = np.repeat(np.arange(len(sizes)), sizes)
        row = np.arange(len(group)) - np.repeat(np.cumsum([0] + sizes[:-1]), sizes)
        present = [c for c in SCALAR_COLUMNS if c in parquet.schema_arrow.names]  # older shards lack some
        table = upgrade_table(parquet.read(columns=present)).select(list(SCALAR_COLUMNS))
        table = table.append_column("_group", pa.array(group)).append_column("_row", pa.array(row))
        if filter is not None:
            table = table.filter(filter)
        kept_group = table.column("_group").to_numpy()
        parts.append({"file": np.full(len(kept_group), file_index), "group": kept_group, "row": table.column("_row").to_numpy(), "global_group": kept_group + group_offset})
        group_offset += len(sizes)
    return {key: np.concatenate([p[key] for p in parts]).astype(np.int64) for key in ("file", "group", "row", "global_group")}


def distributed_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else torch.distributed's when it is initialised, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if rank is not None or world_size is not None:
        raise ValueError(f"give both rank and world_size or neither, got rank={rank} world_size={world_size}")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Stream decoded samples from d4d.shards.

    Args:
        shards: a shard directory, a shard file, or a list of them.
        videos: which videos to decode ("dynamic", "static", "front"); only their columns are read.
        tensors: optional tensor columns to load; None loads those every shard has.
        shuffle: shuffle row groups and samples each epoch; False keeps the stored order.
        shuffle_buffer: shuffle buffer size in samples.
        seed: with the epoch, fixes the order.
        rank, world_size: this process's share; None takes torch.distributed's (or 0 and 1).
        batch_size: the DataLoader's batch size (the unit handed to each worker in turn).
        drop_last: cut the epoch to a multiple of world_size instead of padding it by repeating
            its first samples.
        filter: a pyarrow expression over the scalar columns (schema.SCALAR_COLUMNS), e.g.
            ``pc.field("license") == "CC-BY"``; evaluated once, so every rank sees the same set.
        min_motion_magnitude: keep rows with motion_magnitude >= this (rows with none are dropped).
        background: None keeps straight colour; a grey level in [0, 1] composites over it.
        second_orbit: probability that a sample shows its row's second orbit (dynamic2 /
            static2, rendered with ``--orbits 2``: the paper's view augmentation) under the
            first orbit's names; the draw is fixed by seed, epoch and position. Rows without a
            second orbit always show the first; "front" (one fixed camera) is never swapped.
            ``sample["orbit"]`` says which orbit dynamic and static show.
            Tensor columns (cached latents) belong to the first orbit: not allowed with it.
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        videos: Sequence[str] = ("dynamic", "static"),
        tensors: Sequence[str] | None = None,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
        filter: pc.Expression | None = None,
        min_motion_magnitude: float | None = None,
        background: float | None = None,
        second_orbit: float = 0.0,
    ):
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= second_orbit <= 1.0:
            raise ValueError(f"second_orbit must be a probability in [0, 1], got {second_orbit}")
        self.paths = open_shards(shards)
        self.videos = tuple(videos)
        self.tensors = resolve_tensors(self.paths, tensors)
        if second_orbit > 0 and self.tensors:
            raise ValueError(f"second_orbit: the tensor columns {list(self.tensors)} belong to the first orbit; read pixels instead")
        self.second_orbit = second_orbit
        self.columns = row_columns(self.videos, self.tensors)
        if second_orbit > 0:
            self.columns += video_columns(second_orbit_videos(self.videos))
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self._rank, self._world_size = rank, world_size
        self.batch_size, self.drop_last, self.background = batch_size, drop_last, background
        self.index = sample_index(self.paths, build_filter(filter, min_motion_magnitude))
        self.epoch = 0
        self._start = 0  # samples of this epoch to skip (set by load_state_dict)
        self._consumed = 0  # samples this process has yielded in this epoch

    @property
    def num_samples(self) -> int:
        """Samples kept by the filter, over all ranks."""
        return len(self.index["file"])

    def rank_sequence(self) -> np.ndarray:
        """This rank's samples for the current epoch, in delivery order (indices into ``index``)."""
        rank, world_size = distributed_rank_world(self._rank, self._world_size)
        order = epoch_order(self.index["global_group"], self.seed, self.epoch, self.shuffle, self.shuffle_buffer)
        return rank_share(order, rank, world_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.rank_sequence())

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (from its start)."""
        if epoch != self.epoch:
            self._start = 0
        self.epoch, self._consumed = epoch, self._start

    def state_dict(self, consumed: int | None = None) -> dict:
        """The resume point: epoch and samples of it already consumed by this rank.

        ``consumed`` defaults to what this process iterated itself, exact only with num_workers=0.
        """
        _, world_size = distributed_rank_world(self._rank, self._world_size)
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "consumed": self._consumed if consumed is None else int(consumed),
            "seed": self.seed,
            "world_size": world_size,
            "num_samples": self.num_samples,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (state_dict's output); raises ValueError if it came from a run
        whose order differs (another seed, world size or set of samples)."""
        _, world_size = distributed_rank_world(self._rank, self._world_size)
        mine = {"version": STATE_VERSION, "seed": self.seed, "world_size": world_size, "num_samples": self.num_samples}
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(f"cannot resume: state has {key}={state.get(key)!r}, this dataset {key}={value!r}")
        self.epoch, self._start, self._consumed = int(state["epoch"]), int(state["consumed"]), int(state["consumed"])

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        positions, samples = worker_share(self.rank_sequence(), self._start, worker, num_workers, self.batch_size)
        yield from self._read(positions, samples)

    def _shows_second_orbit(self, position: int) -> bool:
        """The draw of sample ``position`` of this epoch (the same on every rank and worker)."""
        if self.second_orbit <= 0:
            return False
        return bool(np.random.default_rng([self.seed, self.epoch, position, 2]).random() < self.second_orbit)

    def _read(self, positions: np.ndarray, samples: np.ndarray):
        """Decode ``samples`` in order, reading each needed row group once and keeping only the
        rows this worker will yield (so memory holds rows waiting in the shuffle window)."""
        files, groups, rows = self.index["file"][samples], self.index["group"][samples], self.index["row"][samples]
        parquet_files: dict[int, pq.ParquetFile] = {}
        waiting: dict[tuple[int, int, int], dict] = {}
        remaining: dict[tuple[int, int], list[int]] = {}
        for f, g, r in zip(files.tolist(), groups.tolist(), rows.tolist()):
            remaining.setdefault((f, g), []).append(r)
        for position, f, g, r in zip(positions.tolist(), files.tolist(), groups.tolist(), rows.tolist()):
            if (f, g, r) not in waiting:
                if f not in parquet_files:
                    parquet_files[f] = pq.ParquetFile(self.paths[f])
                names = parquet_files[f].schema_arrow.names
                table = parquet_files[f].read_row_group(g, columns=[c for c in self.columns if c in names])
                for needed in set(remaining[(f, g)]):
                    waiting[(f, g, needed)] = {c: None for c in self.columns} | table.slice(needed, 1).to_pylist()[0]
            row = waiting[(f, g, r)]
            remaining[(f, g)].remove(r)
            if r not in remaining[(f, g)]:  # a padded epoch can repeat a sample
                del waiting[(f, g, r)]
            second = as_second_orbit(row, self.videos) if self._shows_second_orbit(position) else None
            metadata = parquet_files[f].metadata
            where = f"{self.paths[f]}: row {sum(metadata.row_group(i).num_rows for i in range(g)) + r} (uid {printable(str(row['uid']), 200)})"
            sample = decode_row(second or row, self.videos, self.tensors, self.background, where)
            sample["orbit"] = 2 if second is not None else 1
            sample["position"] = position
            self._consumed = position + 1
            yield sample
