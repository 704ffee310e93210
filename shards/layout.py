"""The orbit layout a set of shards was rendered with: what a model trained on them learns."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from d4d.rendering.orbits import OrbitLayout, layout_from_cameras
from d4d.shards.files import list_shards


def shard_orbit_layout(shard_dir: str | Path) -> OrbitLayout:
    """The OrbitLayout of every row's dynamic orbit (distance, elevation, field of view, start
    azimuth, open or closed, frame count). ValueError naming the layouts when rows differ: a
    model has no camera input, so it learns one layout, and samples are written on it."""
    layouts: Counter = Counter()
    for path in list_shards(shard_dir):
        table = pq.read_table(path, columns=["camera_angle_x", "dynamic_azimuth_deg", "dynamic_c2w"])
        for angle, azimuths, c2w in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if azimuths is not None:
                layouts[layout_from_cameras(angle, np.asarray(azimuths), np.asarray(c2w).reshape(-1, 4, 4))] += 1
    if not layouts:
        raise ValueError(f"{shard_dir}: no shard row has a dynamic orbit")
    if len(layouts) > 1:
        shown = "; ".join(f"{n} rows {layout}" for layout, n in layouts.most_common())
        raise ValueError(f"{shard_dir}: rows were rendered on {len(layouts)} orbit layouts ({shown}); train on shards of one layout")
    return next(iter(layouts))


def shards_have_second_orbit(shard_dir: str | Path) -> bool:
    """Whether any row of the shards carries a second orbit (``dynamic2``, rendered with
    ``--orbits 2``); reads the small times column, not the videos."""
    for path in list_shards(shard_dir):
        if "dynamic2_times" in pq.ParquetFile(path).schema_arrow.names:
            times = pq.read_table(path, columns=["dynamic2_times"]).column(0)
            if times.null_count < len(times):
                return True
    return False
