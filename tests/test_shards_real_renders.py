"""Shards written from real Blender renders of the built-in assets read back exactly (lossless) or within tolerance (lossy)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import requires_bpy

from d4d.rendering.contract import load_render
from d4d.shards.video import decode_rgba
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import LOSSY_MAX_ALPHA_MEAN_ERROR, LOSSY_MIN_PSNR_DB, premultiplied_psnr

pytestmark = [requires_bpy, pytest.mark.blender]


@pytest.mark.parametrize("codec", ["lossless", "lossy"])
def test_real_renders_round_trip_through_shards(render_builtin, tmp_path, codec):
    renders = [render_builtin(name) for name in ("skinned", "late_start", "static")]
    write_shards(renders, tmp_path / "shards", ShardWriteConfig(codec=codec))
    rows = {r["uid"]: r for p in sorted((tmp_path / "shards").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()}
    assert len(rows) == 3
    for render_dir in renders:
        asset = json.loads((render_dir / "asset.json").read_text())
        row = rows[asset["source"]["sha256"]]
        assert row["motion_magnitude"] == asset["motion_magnitude"]
        for name, video in load_render(render_dir).videos.items():
            decoded = decode_rgba(row[f"{name}_video"])
            if codec == "lossless":
                np.testing.assert_array_equal(decoded, video.rgba)
            else:
                assert premultiplied_psnr(decoded, video.rgba) >= LOSSY_MIN_PSNR_DB
                assert np.abs(decoded[..., 3].astype(int) - video.rgba[..., 3]).mean() <= LOSSY_MAX_ALPHA_MEAN_ERROR
            np.testing.assert_array_equal(np.reshape(row[f"{name}_c2w"], (-1, 4, 4)), video.c2w)
