"""benchmarks/learning.py's parts that a test can afford: the procedural dataset (specs, split,
the .glb files Blender writes and their captions) and the results writer (paired verdicts, the
table). The end-to-end run curates, trains and samples for minutes: `--scale smoke`."""

from __future__ import annotations

import csv
import json
import struct
from dataclasses import asdict

import pytest
from conftest import requires_bpy

from benchmarks.learning import RUNS, SCALES, claims, paired, results_markdown, verdict, write_results
from d4d.files import sha256_file
from d4d.rendering.procedural_assets import (
    COLOURS,
    MOTIONS,
    SHAPES,
    asset_path,
    dataset_specs,
    ensure_procedural_assets,
    procedural_specs,
    read_specs,
)


def test_specs_are_seeded_spread_over_motions_and_hold_out_distinct_motions():
    specs = procedural_specs(18, seed=3)
    assert specs == procedural_specs(18, seed=3) and specs != procedural_specs(18, seed=4)
    assert {s.motion for s in specs} == set(MOTIONS) and len({s.shape for s in specs}) > 2
    for s in specs:
        low, high = MOTIONS[s.motion]
        assert s.shape in SHAPES and low <= s.amplitude <= high
        assert s.colours[0] != s.colours[1] and set(s.colours) <= set(COLOURS)
        assert s.colours[0] in s.caption and s.colours[1] in s.caption and s.motion not in s.caption  # Cap3D: looks, not motion
    split = dataset_specs(18, heldout=5, seed=3)
    held = [s for s in split if s.split == "heldout"]
    assert len(held) == 5 and len({s.motion for s in held}) == 5  # one per motion
    assert [s.name for s in held] == [s.name for s in specs[-5:]]
    for bad in (dict(count=0, heldout=0), dict(count=4, heldout=4), dict(count=4, heldout=-1)):
        with pytest.raises(ValueError):
            dataset_specs(seed=0, **bad)


def _glb_json(path) -> dict:
    """The JSON chunk of a binary glTF file."""
    data = path.read_bytes()
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert magic == b"glTF" and kind == b"JSON"
    return json.loads(data[20:20 + length])


@requires_bpy
@pytest.mark.blender
@pytest.mark.slow
def test_blender_writes_animated_assets_with_captions_per_split(tmp_path):
    out = tmp_path / "assets"
    specs = ensure_procedural_assets(out, count=3, heldout=1, seed=5)
    assert specs == dataset_specs(3, 1, 5) == read_specs(out)
    channel = {"spin": "rotation", "tumble": "rotation", "bounce": "translation", "slide": "translation", "pulse": "scale", "squash": "scale"}
    for spec in specs:
        gltf = _glb_json(asset_path(out, spec))
        paths = {c["target"]["path"] for a in gltf["animations"] for c in a["channels"]}
        assert channel[spec.motion] in paths, spec
        assert len(gltf["materials"]) == 2  # two tones
    for split in ("train", "heldout"):
        rows = list(csv.reader((out / split / "captions.csv").open()))
        expected = [[sha256_file(asset_path(out, s)), s.caption] for s in specs if s.split == split]
        assert rows == expected and rows
    stamps = {s.name: asset_path(out, s).stat().st_mtime_ns for s in specs}
    assert ensure_procedural_assets(out, count=3, heldout=1, seed=5) == specs  # kept, not rebuilt
    assert {s.name: asset_path(out, s).stat().st_mtime_ns for s in specs} == stamps
    other = ensure_procedural_assets(out, count=2, heldout=1, seed=6)  # another draw replaces the files
    assert sorted(p.name for p in out.rglob("*.glb")) == sorted(f"{s.name}.glb" for s in other)


def _eval(psnr: dict[str, list[float]], motion_error: dict[str, list[float]] | None = None) -> dict:
    """An eval.json with per-clip PSNR (and motion errors) per run, as d4d-eval writes it."""
    runs = []
    for name, values in psnr.items():
        errors = (motion_error or {}).get(name, [1.0] * len(values))
        rows = [{"uid": f"clip{i}", "psnr": v, "ssim": 0.5, "motion_error": e, "m_generated": 10.0 + e, "m_requested": 10.0}
                for i, (v, e) in enumerate(zip(values, errors))]
        metrics = {key: {"value": sum(r[key] for r in rows) / len(rows), "n": len(rows), "reason": None}
                   for key in ("psnr", "ssim", "motion_error")}
        metrics["lpips"] = {"value": None, "n": 0, "reason": "no LPIPS weights folder given (--lpips)"}
        metrics["motion_rank"] = {"value": 0.4, "n": len(rows), "reason": None}
        runs.append({"name": name, "per_clip": rows + [{"uid": "bad", "skipped": "cameras differ"}], "metrics": metrics})
    return {"runs": runs}


def test_paired_verdicts_follow_the_evidence():
    base = [12.0, 15.0, 9.0, 14.0, 11.0]
    better = _eval({"a": [v + 1.0 + 0.1 * i for i, v in enumerate(base)], "b": base})
    diff = paired(better, "a", "b", "psnr")
    assert diff["n"] == 5 and diff["mean"] == pytest.approx(1.2) and diff["se"] > 0
    assert verdict(diff, higher_is_better=True) == "holds" and verdict(diff, higher_is_better=False) == "contradicted"
    noisy = _eval({"a": [v + d for v, d in zip(base, (3.0, -3.0, 2.5, -2.0, 0.1))], "b": base})
    assert verdict(paired(noisy, "a", "b", "psnr"), True) == "inconclusive"
    assert verdict(paired(better, "a", "missing", "psnr"), True) == "not measured"


def test_results_writer_lists_every_run_the_paper_and_every_claim(tmp_path):
    names = [spec.name for spec in RUNS]
    psnr = {name: [10.0 + k + 0.3 * i for i in range(4)] for k, name in enumerate(names)}
    errors = {name: [2.0, 3.0, 4.0, 5.5] for name in names}
    errors["image-no-lmr"] = [9.0, 9.5, 11.0, 12.0]  # L_mr clearly lowers the image model's error
    eval_json = _eval(psnr, errors)
    found = {c["claim"]: c for c in claims(eval_json)}
    lmr = found["image: L_mr makes the measured motion follow the requested m (lower motion error)"]
    assert lmr["verdict"] == "holds" and lmr["mean"] == pytest.approx(-6.75)
    assert found["static: L_mr makes the measured motion follow the requested m (lower motion error)"]["verdict"] == "inconclusive"
    w2 = found["image: the 3D-aware term (w2) improves fidelity (PSNR)"]  # "image" is 2 dB below "image-no-w2" on every clip
    assert w2["verdict"] == "contradicted"
    assert found["image: the requested m controls the generated motion (Spearman > 0 over held-out clips)"]["verdict"] == "inconclusive"

    results = {"command": "python -m benchmarks.learning --scale smoke", "scale_name": "smoke", "scale": asdict(SCALES["smoke"]),
               "heldout_clips": 4, "train_clips": 10, "total_minutes": 3.5, "machine": "2 CPU cores", "autoencoder_psnr": 30.0,
               "timings": {"curate": 60.0}, "eval": eval_json, "claims": claims(eval_json)}
    md_path, json_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text())["claims"] == results["claims"]
    text = md_path.read_text()
    assert text == results_markdown(results)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[:len(names) + 3])  # run rows as wide as the header
    for name in names:
        assert f"| {name} | " in text
    assert "| Diffusion4D paper, image | 16.70 | 0.830 | 0.210 |" in text
    assert "LPIPS absent: no LPIPS weights folder given (--lpips)." in text
    assert text.count("**holds**") + text.count("**contradicted**") + text.count("**inconclusive**") + \
        text.count("**not measured**") == len(results["claims"])
