"""``make demo``'s driver (python -m d4d.demo) end to end at a small size: every step's output
exists and a rerun resumes instead of redoing the work."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import requires_bpy

from d4d.demo import main
from d4d.reconstruction import config as reconstruct_config

pytestmark = [requires_bpy, pytest.mark.blender, pytest.mark.slow]

SMALL = ["--frames", "8", "--resolution", "32", "--engine", "workbench", "--workers", "1",
         "--static-steps", "1", "--train-steps", "2", "--autoencoder-steps", "4", "--sample-steps", "2", "--reconstruct-preset", "fast"]


def test_demo_runs_every_step_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    # The fast preset at 50 + 100 steps (densification at step 100 included) instead of 300 + 700:
    # this test checks what every step makes and that a rerun resumes; the preset's quality has
    # tests of its own (tests/test_reconstruct_pipeline.py).
    fast = reconstruct_config.PRESETS["fast"]
    monkeypatch.setitem(reconstruct_config.PRESETS, "fast", lambda: replace(fast(), coarse_iterations=50, iterations=100))
    out = tmp_path / "demo"
    assert main(["--out", str(out), *SMALL, "--reconstruct-render"]) == 0
    printed = capsys.readouterr().out

    stats = json.loads((out / "curation" / "stats.json").read_text())
    # The static built-in is rejected for what it is; clips of the animated ones are kept (at
    # 32 px some windows also fall to the image rules, which this small size is not meant for).
    assert stats["by_reason"]["reject/no_animation"] == 1 and stats["by_decision"]["keep"] >= 4
    assert stats["in_shards"] == stats["by_decision"]["keep"] and any((out / "curation" / "shards").glob("*.parquet"))
    for run in ("small-text-static", "small-text"):
        assert (out / "train" / run / "model" / "model_index.json").is_file(), run
    autoencoder = json.loads((out / "train" / "small-text-static" / "autoencoder" / "metrics.json").read_text())
    assert autoencoder["steps"] == 4 and autoencoder["heldout_psnr"] > 0  # the base fitted its VAE; the 4D model reuses it
    assert not (out / "train" / "small-text" / "autoencoder").exists()
    assert json.loads((out / "sample" / "transforms.json").read_text())["frames"]
    comparison = json.loads((out / "sample" / "comparison.json").read_text())
    assert comparison["resolution"] == 32 and 0 <= comparison["matte_iou"] <= 1 and comparison["psnr"] > 0
    assert (out / "sample" / "beside_render.mp4").stat().st_size > 0
    recons = list((out / "reconstruction").iterdir())
    assert {d.name for d in recons} == {"sample", "render"}  # the sample, and (--reconstruct-render) the render it was prompted for
    for recon in recons:
        metrics = json.loads((recon / "metrics.json").read_text())
        assert metrics["preset"] == "fast" and len(list((recon / "frames").glob("*.ply"))) == 8
        assert not (recon / "checkpoint.pt").exists()
    for page in ("curation", "training-static", "training", "sample", "reconstruction-sample", "reconstruction-render"):
        assert (out / "report" / page / "index.html").stat().st_size > 1000, page
    assert "== d4d demo results in" in printed and "PSNR" in printed

    # A rerun resumes: finished reconstructions and curation are kept, not redone.
    stamps = {d.name: (d / "metrics.json").stat().st_mtime_ns for d in recons}
    assert main(["--out", str(out), *SMALL]) == 0
    assert {d.name: (d / "metrics.json").stat().st_mtime_ns for d in recons} == stamps
    assert "already finished, none to do (Ray not started)" in capsys.readouterr().out


def test_demo_refuses_an_unknown_engine(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "demo"), "--engine", "blender-internal"])
    assert exc.value.code == 2 and "--engine" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
