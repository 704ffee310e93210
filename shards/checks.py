"""Range checks of a shard row's values, where rows enter a reader (docs/shards.md, "Field constraints").

``table_problems`` is the one check of a shard row's numbers, vectorised over the rows of a
pyarrow table read from a shard (any subset of its columns: absent columns are not checked).
d4d-shards verify runs it on every row group and reports every problem; the readers
(``dataset.open_shards``, so ShardDataset, d4d-train and read_shards_ray) run it on every row
before the first sample and stop at the first problem; d4d-reconstruct runs it on the row it
reads. A content hash says a row was not altered since it was written, not that its writer was
honest, so these checks run on rows whose hash is correct too.

The bounds (image sides, field of view, camera distance, decode budget) are the render
contract's (``rendering.contract``), so a shard row and a render directory are held to the same.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from d4d.rendering.contract import (
    CAMERA_FAULTS,
    FOV_RANGE_DEG,
    MAX_DECODED_BYTES,
    MAX_IMAGE_SIDE,
    VIDEO_NAMES,
    AssetInfo,
    camera_faults,
    strict_json,
    times_ok,
)
from d4d.shards.video import CODECS
from d4d.untrusted import printable

#: Optional float columns: null or finite,
OPTIONAL_FLOATS = ("frame_start", "frame_end", "fps", "motion_magnitude", "window_start_s", "window_end_s")
#: and, for these, above a bound: (bound, strictly).
FLOAT_BOUNDS = {"fps": (0.0, True), "motion_magnitude": (0.0, False)}
#: Relative tolerance of K's focal length against camera_angle_x and width.
K_TOLERANCE = 1e-6
#: The columns a reader checks when it opens shards: everything but the payloads (videos,
#: asset.json, tensors), which are checked as they are decoded.
CHECKED_COLUMNS = (
    ("uid", "width", "height", "num_frames", "camera_angle_x", "video_codec", "K", "motion_magnitude_per_frame",
     "motion_magnitude_version") + OPTIONAL_FLOATS
    + tuple(f"{v}_{suffix}" for v in VIDEO_NAMES for suffix in ("c2w", "times", "azimuth_deg"))
)


def _scalars(table: pa.Table, name: str) -> np.ndarray:
    """float64 [N] of a numeric column (null as NaN)."""
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _nulls(table: pa.Table, name: str) -> np.ndarray:
    """bool [N]: which rows of a column are null."""
    return np.asarray(table.column(name).is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _lists(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lengths int [N] (null: 0), values float64 [M] (null items: NaN), parent row int [M]) of a list column."""
    column = table.column(name).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
    parent = pc.list_parent_indices(column).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, values, parent


def _first_bad_item(bad: np.ndarray, parent: np.ndarray, rows: int) -> dict[int, int]:
    """row -> index (within the row) of its first flagged item; ``bad`` and ``parent`` are per item."""
    starts = np.searchsorted(parent, np.arange(rows))
    firsts: dict[int, int] = {}
    for item in np.flatnonzero(bad):
        firsts.setdefault(int(parent[item]), int(item - starts[parent[item]]))
    return firsts


def geometry_ok(table: pa.Table) -> np.ndarray:
    """bool [N]: rows whose width, height, num_frames and video_codec are valid and whose videos fit
    the decode budget, so their videos may be decoded against them (the columns must be present)."""
    width, height, frames = (_scalars(table, c) for c in ("width", "height", "num_frames"))
    with np.errstate(invalid="ignore"):
        ok = (width >= 1) & (width <= MAX_IMAGE_SIDE) & (height >= 1) & (height <= MAX_IMAGE_SIDE) & (frames >= 1)
        ok &= np.nan_to_num(frames * width * height * 4, nan=np.inf) <= MAX_DECODED_BYTES
    names = {c.name for c in CODECS.values()}
    return ok & np.array([codec in names for codec in table.column("video_codec").to_pylist()], dtype=bool)


def table_problems(table: pa.Table) -> list[tuple[int, str]]:
    """Every problem with the values of ``table``'s rows, as (row index in the table, reason),
    in row order. Checks the columns present (docs/shards.md lists the constraints)."""
    rows = table.num_rows
    have = set(table.column_names)
    found: list[tuple[int, str]] = []

    def flag(mask: np.ndarray, reason) -> None:
        found.extend((int(i), reason(int(i))) for i in np.flatnonzero(mask))

    def value(name: str, i: int):
        return table.column(name)[i].as_py()

    with np.errstate(invalid="ignore", over="ignore"):
        for name in ("width", "height"):
            if name in have:
                sides = _scalars(table, name)
                flag(~((sides >= 1) & (sides <= MAX_IMAGE_SIDE)), lambda i, n=name: f"{n} {value(n, i)} is not in 1..{MAX_IMAGE_SIDE}")
        frames = _scalars(table, "num_frames") if "num_frames" in have else np.full(rows, np.nan)
        if "num_frames" in have:
            flag(~(frames >= 1), lambda i: f"num_frames {value('num_frames', i)} is not a positive frame count")
        if {"width", "height", "num_frames"} <= have:
            area = _scalars(table, "width") * _scalars(table, "height")
            flag((frames >= 1) & (area >= 1) & (frames * area * 4 > MAX_DECODED_BYTES),
                 lambda i: f"a video of {value('num_frames', i)} frames of {value('width', i)}x{value('height', i)} "
                           f"exceeds the decode budget of {MAX_DECODED_BYTES / 2**30:g} GiB")
        if "camera_angle_x" in have:
            low, high = FOV_RANGE_DEG
            flag(~_fov_ok(table), lambda i: f"camera_angle_x {value('camera_angle_x', i)!r} is not a field of view in [{low:g}, {high:g}] degrees")
        if "video_codec" in have:
            names = {c.name for c in CODECS.values()}
            flag(np.array([c not in names for c in table.column("video_codec").to_pylist()], dtype=bool),
                 lambda i: f"video_codec {value('video_codec', i)!r:.60} is not one of {', '.join(sorted(names))}")
        if "K" in have:
            found += _k_problems(table, have)
        for name in OPTIONAL_FLOATS:
            if name in have:
                values = _scalars(table, name)
                present = ~_nulls(table, name)
                low = FLOAT_BOUNDS.get(name)
                bad = present & ~np.isfinite(values)
                if low is not None:
                    bad |= present & ~((values > low[0]) if low[1] else (values >= low[0]))
                rule = "a finite number" if low is None else f"a finite number {'>' if low[1] else '>='} {low[0]:g}"
                flag(bad, lambda i, n=name, r=rule: f"{n} {value(n, i)!r} is not {r}")
        if "motion_magnitude_version" in have:
            versions = _scalars(table, "motion_magnitude_version")
            flag(~np.isnan(versions) & ~(versions >= 1), lambda i: f"motion_magnitude_version {value('motion_magnitude_version', i)} is not >= 1")
        if {"motion_magnitude_per_frame", "num_frames"} <= have:
            lengths, values, parent = _lists(table, "motion_magnitude_per_frame")
            present = ~_nulls(table, "motion_magnitude_per_frame")
            flag(present & (lengths != frames), lambda i: f"motion_magnitude_per_frame has {lengths[i]} values, expected num_frames={value('num_frames', i)}")
            for row, item in _first_bad_item(~(np.isfinite(values) & (values >= 0)), parent, rows).items():
                found.append((row, f"motion_magnitude_per_frame[{item}] is not a finite non-negative number"))
        for video in VIDEO_NAMES:
            found += _video_problems(table, have, video, frames)
        if "asset_json" in have:
            for i, text in enumerate(table.column("asset_json").to_pylist()):
                if text is not None:
                    try:
                        AssetInfo.parse(strict_json(text), "asset_json")
                    except (ValueError, RecursionError) as exc:  # JSON errors, nested too deep, RenderContractError
                        found.append((i, f"{exc}" if str(exc).startswith("asset_json") else f"asset_json: not valid JSON ({type(exc).__name__}: {exc})"))
    return sorted(found, key=lambda item: item[0])


def _k_problems(table: pa.Table, have: set[str]) -> list[tuple[int, str]]:
    """K: 9 finite values, positive focal lengths, last row 0 0 1, focal length as camera_angle_x says."""
    lengths, values, parent = _lists(table, "K")
    problems = [(int(i), f"K has {lengths[i]} values, expected 9") for i in np.flatnonzero(lengths != 9)]
    whole = lengths == 9
    K = np.full((table.num_rows, 9), np.nan)
    K[whole] = values[whole[parent]].reshape(-1, 9)
    good = np.isfinite(K).all(axis=1) & (K[:, 0] > 0) & (K[:, 4] > 0) & (np.abs(K[:, 6:] - [0.0, 0.0, 1.0]).max(axis=1) == 0)
    problems += [(int(i), "K is not finite pinhole intrinsics (positive focal lengths, last row 0 0 1)") for i in np.flatnonzero(whole & ~good)]
    if {"camera_angle_x", "width"} <= have:
        width = _scalars(table, "width")
        comparable = whole & good & _fov_ok(table) & (width >= 1) & (width <= MAX_IMAGE_SIDE)
        focal = 0.5 * width / np.tan(0.5 * _scalars(table, "camera_angle_x"))
        disagree = comparable & ~np.isclose(K[:, 0], focal, rtol=K_TOLERANCE, atol=0.0)
        problems += [(int(i), f"K's focal length {K[i, 0]:g} disagrees with camera_angle_x and width ({focal[i]:g})") for i in np.flatnonzero(disagree)]
    return problems


def _fov_ok(table: pa.Table) -> np.ndarray:
    """bool [N]: camera_angle_x is a field of view in FOV_RANGE_DEG (radians)."""
    angles = _scalars(table, "camera_angle_x")
    low, high = np.radians(FOV_RANGE_DEG)
    return (angles >= low) & (angles <= high)


def _video_problems(table: pa.Table, have: set[str], video: str, frames: np.ndarray) -> list[tuple[int, str]]:
    """A present video's per-frame columns: T cameras (rigid, finite, near), T times in [0, 1], T finite azimuths."""
    if "num_frames" not in have:  # per-frame columns are checked against the frame count
        return []
    if f"{video}_video" in have:
        present = ~_nulls(table, f"{video}_video")
    elif f"{video}_times" in have:  # a projection without the payload: a video is there when its times are
        present = ~_nulls(table, f"{video}_times")
    else:
        return []
    per_item = {"c2w": 16, "times": 1, "azimuth_deg": 1}
    columns = {suffix: _lists(table, f"{video}_{suffix}") for suffix in per_item if f"{video}_{suffix}" in have}
    counts_ok = present.copy()
    for suffix, (lengths, _, _) in columns.items():
        counts_ok &= (lengths % per_item[suffix] == 0) & (lengths // per_item[suffix] == frames)
    problems = []
    for row in np.flatnonzero(present & ~counts_ok):
        counts = {suffix: int(columns[suffix][0][row]) / per_item[suffix] for suffix in columns}
        counts = {suffix: int(n) if n.is_integer() else n for suffix, n in counts.items()}
        problems.append((int(row), f"{video}: per-frame columns {counts} disagree with num_frames={table.column('num_frames')[int(row)].as_py()}"))
    for suffix, (lengths, values, parent) in columns.items():
        if not counts_ok[lengths > 0].all():  # leave out rows whose lists are not whole frames
            keep = counts_ok[parent]
            values, parent = values[keep], parent[keep]
        if suffix == "c2w":
            faults = camera_faults(values)
            matrix_parent = parent[::16]
            firsts = _first_bad_item(faults > 0, matrix_parent, table.num_rows)
            starts = np.searchsorted(matrix_parent, np.arange(table.num_rows))
            problems += [(row, f"{video}_c2w frame {item}: camera {CAMERA_FAULTS[faults[starts[row] + item]]}") for row, item in firsts.items()]
        elif suffix == "times":
            firsts = _first_bad_item(~times_ok(values), parent, table.num_rows)
            problems += [(row, f"{video}_times[{item}] is not a time in [0, 1]") for row, item in firsts.items()]
        else:
            firsts = _first_bad_item(~np.isfinite(values), parent, table.num_rows)
            problems += [(row, f"{video}_azimuth_deg[{item}] is not finite") for row, item in firsts.items()]
    return problems


def check_table(table: pa.Table, name: str, first_row: int = 0) -> None:
    """Raise ValueError ``NAME: row I (uid U): reason`` for the first problem of ``table``'s
    values, with the count of the others; the table's row 0 is row ``first_row`` of ``name``."""
    problems = table_problems(table)
    if problems:
        row, reason = problems[0]
        uid = table.column("uid")[row].as_py() if "uid" in table.column_names else None
        more = f" (and {len(problems) - 1} more; d4d-shards verify lists every problem)" if len(problems) > 1 else ""
        raise ValueError(f"{name}: row {first_row + row} (uid {printable(str(uid), 200)}): {reason}{more}")
