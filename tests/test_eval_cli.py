"""d4d-eval end to end on real shards, with tiny random CLIP, LPIPS and I3D weights, and its report page.

The held-out split is two synthetic assets (10 frames of 32 x 32, written by the shard writer).
Two "generated" runs are written by d4d-sample's own writer: "copy" holds each asset's
ground-truth dynamic orbit, "frozen" its static orbit, both asked for the ground truth's motion.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from d4d.evaluation.cli import main
from d4d.evaluation.evaluate import COLUMNS, PAPER_ROWS, markdown_table, read_results
from d4d.inspection.media import MediaStore
from d4d.inspection.report import build_report, write_report
from d4d.measures import motion_magnitude
from d4d.rendering.orbits import OrbitLayout
from d4d.shards.dataset import ShardDataset
from d4d.testing.eval_fixtures import clip_folder, i3d_file, lpips_folder
from d4d.testing.train_fixtures import single_thread
from d4d.training.outputs import write_sample

HEADER = ["run", "task", "clips", *(title for _, title, _, _ in COLUMNS)]


def markdown_tables(text: str) -> tuple[list[list[str]], list[str]]:
    """(rows of the table, header first, as each cell's text; the text of every list item) as
    markdown-it-py (CommonMark with GFM tables) parses ``text``; rows as written in the source
    must split into as many cells as the header (markdown-it pads or cuts rows silently)."""
    from markdown_it import MarkdownIt

    rows, items, cells, in_item = [], [], None, False
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "tr_open":
            cells = []
            assert len(split_row(text.splitlines()[token.map[0]])) == len(HEADER), text.splitlines()[token.map[0]]
        elif token.type == "tr_close":
            rows.append(cells)
            cells = None
        elif token.type in ("list_item_open", "list_item_close"):
            in_item = token.type == "list_item_open"
        elif token.type == "inline" and (cells is not None or in_item):
            shown = "".join(c.content for c in token.children if c.type in ("text", "code_inline"))
            cells.append(shown) if cells is not None else items.append(shown)
    return rows, items


def split_row(line: str) -> list[str]:
    """A table row's cells: split on pipes that are not backslash-escaped, outer pipes dropped."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    from d4d.shards.writer import write_shards
    from d4d.testing.shards_helpers import make_shard_render

    root = tmp_path_factory.mktemp("eval")
    renders = [make_shard_render(root / "renders", f"ball{i}", frames=10, size=32) for i in range(2)]
    assert not write_shards(renders, root / "shards").failed
    requested = {}
    for sample in ShardDataset(root / "shards", videos=("dynamic", "static"), shuffle=False, background=1.0):
        dynamic, static = (sample["dynamic_video"] + 1) / 2, (sample["static_video"] + 1) / 2
        requested[sample["uid"]] = motion_magnitude(dynamic.permute(0, 2, 3, 1).numpy(), static.permute(0, 2, 3, 1).numpy())
        for run, frames in (("copy", dynamic), ("frozen", static)):
            asset = {"task": "image", "motion_magnitude": requested[sample["uid"]]}
            write_sample(root / run / sample["uid"], frames.numpy(), OrbitLayout(frames=10), 1.0, asset)
    weights = {"clip": clip_folder(root / "clip"), "lpips": lpips_folder(root / "lpips"), "i3d": i3d_file(root / "i3d.pt")}
    return {"root": root, "shards": root / "shards", "requested": requested, "weights": weights}


def test_d4d_eval_measures_every_metric_and_the_report_shows_them(setup, tmp_path):
    root, weights = setup["root"], setup["weights"]
    out = tmp_path / "eval"
    assert main([str(root / "copy"), str(root / "frozen"), "--shards", str(setup["shards"]), "--out", str(out),
                 "--clip", str(weights["clip"]), "--lpips", str(weights["lpips"]), "--i3d", str(weights["i3d"]),
                 "--fvd-size", "64", "--device", "cpu"]) == 0
    results = read_results(out / "eval.json")
    copy, frozen = ({k: v["value"] for k, v in run["metrics"].items()} for run in results["runs"])
    # every metric measured, but the rank correlation of m, which needs 3 clips and says why it is absent
    rank = results["runs"][0]["metrics"].pop("motion_rank")
    assert rank["value"] is None and "3" in rank["reason"], rank
    assert all(v["value"] is not None for v in results["runs"][0]["metrics"].values()), results["runs"][0]["metrics"]
    assert results["runs"][0]["clips"] == 2 and not results["runs"][0]["missing"]
    # a copy of the ground truth (8-bit rounding apart) against a motionless orbit
    assert copy["psnr"] > 40 and copy["ssim"] > 0.99 and copy["clip_o"] > 0.999 and copy["lpips"] < 1e-3
    assert frozen["psnr"] < copy["psnr"] and frozen["ssim"] < copy["ssim"] and frozen["lpips"] > copy["lpips"]
    assert copy["fvd"] < frozen["fvd"]
    mean_requested = sum(setup["requested"].values()) / 2
    assert copy["motion_error"] < 0.01 * mean_requested
    assert frozen["motion_error"] == pytest.approx(mean_requested, rel=0.01)  # a static orbit has m = 0
    rows, _ = markdown_tables((out / "eval.md").read_text())
    assert rows[0] == HEADER and [row[:3] for row in rows[1:3]] == [["copy", "image", "2"], ["frozen", "image", "2"]]
    assert ["Diffusion4D (paper)", "image", "20", "0.890", "0.750", "0.830", "16.70", "0.210", "560.8", "-"] in rows

    report = build_report(out, MediaStore(tmp_path / "media", "media"))
    assert report.kind == "evaluation" and len(report.items) == 4
    assert all(item.videos for item in report.items)  # each card shows its generated orbit
    assert any(title.startswith("d4d-eval: copy") for title in report.tables)
    assert write_report(out, tmp_path / "page.html").stat().st_size > 0


def test_metrics_without_weights_are_absent_with_the_reason(setup, tmp_path):
    root = setup["root"]
    (root / "stray").mkdir(exist_ok=True)
    grey = np.full((10, 3, 32, 32), 0.5, dtype=np.float32)
    write_sample(root / "stray" / "not-held-out", grey, OrbitLayout(frames=10), 1.0, {"task": "image"})
    out = tmp_path / "eval"
    assert main([str(root / "copy"), str(root / "stray"), "--shards", str(setup["shards"]), "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads((out / "eval.json").read_text())
    metrics = results["runs"][0]["metrics"]
    assert metrics["psnr"]["value"] is not None and metrics["ssim"]["value"] is not None
    for key, flag in (("clip_f", "--clip"), ("clip_o", "--clip"), ("lpips", "--lpips"), ("fvd", "--i3d")):
        assert metrics[key]["value"] is None and flag in metrics[key]["reason"]
    stray = results["runs"][1]
    assert stray["clips"] == 0 and "is not in the held-out split" in stray["notes"][0]
    assert "Absent:" in (out / "eval.md").read_text()
    assert main([str(root / "copy"), "--shards", str(tmp_path), "--out", str(out)]) == 2


def test_eval_md_is_a_markdown_table_whatever_the_names_and_reasons_hold():
    name, reason = "a | b *c* <script>x</script> `d`", "no | weights [here](x) & <b>"
    metrics = {key: {"value": None, "n": 0, "reason": reason} for key, *_ in COLUMNS} | {"psnr": {"value": 20.0, "n": 1, "reason": None}}
    results = {"runs": [{"name": name, "task": "image|text", "clips": 1, "metrics": metrics}],
               "paper": [{"task": task, **values} for task, values in PAPER_ROWS]}
    text = markdown_table(results)
    rows, items = markdown_tables(text)
    assert rows[0] == HEADER and len(rows) == 2 + len(PAPER_ROWS)
    assert rows[1] == [name, "image|text", "1", "-", "-", "-", "20.00", "-", "-", "-"]  # shown as written, not split
    assert items == [f"{name}, {title}: {reason}" for key, title, _, _ in COLUMNS if key != "psnr"]
