"""d4d-inspect on what learning produces: a training run's autoencoder stage, and a d4d-sample
output held against a training render (comparison.json, beside_render.mp4).

Samples are written by d4d-sample's own writer (``training.outputs.write_sample``), the training
render by the render contract's writer, the side-by-side video by ``d4d.video.write_mp4``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np

from d4d.inspection.browser import CHROMIUM, load_page
from d4d.inspection.cli import main
from d4d.inspection.detect import detect_kind
from d4d.inspection.report import ReportConfig, write_report
from d4d.inspection.sample_view import BESIDE_LABEL

HOSTILE = '</script><!--<script>x&amp;"\''
FRAMES, SIZE = 4, 16
ONE = ReportConfig(workers=1)  # previews made in this process: no worker start-up in a test


def page_index(page: Path) -> dict:
    """The page's JSON index, after checking no inspected text became markup: only the page's
    own two script blocks, no comment, no "<", ">" or "&" in the JSON block."""
    text = page.read_text()
    assert len(re.findall("<script", text, re.I)) == 2 and "<!--" not in text
    block = re.search(r'<script type="application/json" id="d4d-index">(.*?)</script>', text, re.S).group(1)
    assert not set(block) & set("<>&")
    return json.loads(block)


def page_svgs(page: Path) -> dict[str, int]:
    """aria-label of every SVG plot -> its data-n (values drawn)."""
    return {html.unescape(label): int(n)
            for n, label in re.findall(r'<svg class="plot" data-kind="\w+" data-n="(\d+)"[^>]*aria-label="([^"]*)"', page.read_text())}


def summary(page: Path) -> dict[str, str]:
    """The page's summary boxes, label -> value (unescaped)."""
    return {html.unescape(label): html.unescape(value) for value, label in re.findall(r"<div><b>(.*?)</b>(.*?)</div>", page.read_text())}


# ---------------------------------------------------------------- the autoencoder stage


def _autoencoder_metrics(heldout: float) -> dict:
    history = [{"step": s, "loss": 0.5 / s, "train_psnr": 10.0 + s} for s in (10, 20, 30, 40)]
    history.append({"step": 50, "loss": "nan", "train_psnr": 15.0})  # not a number: skipped
    return {"heldout_psnr": heldout, "train_psnr": heldout + 1.5, "heldout_frames": 64, "train_frames": 448, "scaling_factor": 0.4321,
            "steps": 50, "resolution": 32, "seconds": 12.3, "history": history}


def _run(root: Path, name: str, files: dict[str, object] | None = None) -> Path:
    """A run directory (checkpoints/ and logs/, a JSON-lines loss log) with ``files`` (relative path -> JSON value)."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "log.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 4)))
    for relative, value in (files or {}).items():
        (run / relative).parent.mkdir(parents=True, exist_ok=True)
        (run / relative).write_text(json.dumps(value))
    return run


def test_training_report_shows_the_autoencoder_stage(tmp_path):
    base = _run(tmp_path, "static-base", {"autoencoder/metrics.json": _autoencoder_metrics(23.456)})
    assert detect_kind(base) == "training"
    page = write_report(base, tmp_path / "base.html")
    index = page_index(page)  # the embedded JSON parses
    assert index["kind"] == "training"
    shown = summary(page)
    assert shown["autoencoder held-out PSNR"] == "23.46 dB" and shown["autoencoder steps"] == "50 (12 s)"
    plots = page_svgs(page)
    assert plots["Autoencoder loss"] == 4  # the entry whose loss is not a number is left out
    assert plots["Autoencoder PSNR"] == 4 + 2  # the batch PSNR, and the held-out and training-frame PSNR at the end
    assert plots["Training losses"] == 3
    text = page.read_text()
    assert "autoencoder/metrics.json" in text and "0.4321" in text and "448" in text

    # a run fine-tuned from the base: no stage of its own; its model names the run its VAE came from
    tuned = _run(tmp_path, "dynamic", {"model/model_index.json": {"_class_name": "Diffusion4DPipeline", "static_reference": str(base / "model")}})
    page = write_report(tuned, tmp_path / "tuned.html")
    assert summary(page)["VAE"] == "from static-base's autoencoder stage (held-out 23.46 dB)"
    assert not {"Autoencoder loss", "Autoencoder PSNR"} & set(page_svgs(page))

    # from a stock folder: nothing about an autoencoder at all
    stock = _run(tmp_path, "from-stock", {"model/model_index.json": {"_class_name": "Diffusion4DPipeline", "static_reference": str(tmp_path / "stock")}})
    page = write_report(stock, tmp_path / "stock.html")
    assert not any("autoencoder" in label.lower() or label == "VAE" for label in summary(page))


def test_a_broken_autoencoder_metrics_file_is_a_note(tmp_path):
    run = _run(tmp_path, "run")
    (run / "autoencoder" / "checkpoint").mkdir(parents=True)  # the stage under way
    assert summary(write_report(run, tmp_path / "r.html"))["autoencoder"] == "not finished (no autoencoder/metrics.json)"
    (run / "autoencoder" / "metrics.json").write_text("[1, 2")
    page = write_report(run, tmp_path / "r.html")
    assert "autoencoder/metrics.json: not valid JSON" in html.unescape(page.read_text()) and "autoencoder" not in summary(page)
    (run / "autoencoder" / "metrics.json").write_text(json.dumps({"heldout_psnr": HOSTILE, "steps": True, "history": [HOSTILE, {"step": 1}]}))
    page = write_report(run, tmp_path / "r.html")
    page_index(page)
    assert summary(page)["autoencoder held-out PSNR"] == "-" and summary(page)["autoencoder steps"] == "-"
    assert page_svgs(page)["Autoencoder loss"] == 0 and html.escape(HOSTILE) in page.read_text()  # in the metrics table, as text


# ---------------------------------------------------------------- a d4d-sample output


def _sample(out: Path, prompt: str = "a fox wagging its tail", seed: int = 0) -> Path:
    from d4d.rendering.orbits import OrbitLayout
    from d4d.training.outputs import write_sample

    frames = np.random.default_rng(seed).random((FRAMES, 3, SIZE, SIZE), dtype=np.float32)
    return write_sample(out, frames, OrbitLayout(frames=FRAMES), 1.0, {"task": "text", "prompt": prompt, "seed": seed, "motion_magnitude": 800.0})


def _compare(sample: Path, render: Path, psnr: float, iou: float) -> None:
    """What the demo writes beside a sample: comparison.json, and the render | sample video."""
    from d4d.video import write_mp4

    (sample / "comparison.json").write_text(json.dumps({"render": str(render), "psnr": psnr, "matte_iou": iou, "resolution": SIZE}))
    beside = np.random.default_rng(1).integers(0, 256, (FRAMES, SIZE, 2 * SIZE, 3), dtype=np.uint8)
    write_mp4(beside, sample / "beside_render.mp4")


def _training_render(root: Path) -> Path:
    from d4d.testing.shards_helpers import make_shard_render

    return make_shard_render(root, "fox-clip", frames=FRAMES, size=2 * SIZE, videos=("dynamic",))


def test_sample_page_shows_the_orbit_beside_the_render_with_psnr_and_iou(tmp_path):
    render = _training_render(tmp_path / "renders")
    sample = _sample(tmp_path / "sample", prompt=HOSTILE)
    _compare(sample, render, 21.4987, 0.8754)
    assert detect_kind(sample) == "sample" and detect_kind(render.parent) == "curation"
    page = write_report(sample, tmp_path / "report" / "index.html", ONE)
    (item,) = page_index(page)["items"]
    assert item["caption"] == HOSTILE and item["title"] == "sample"
    assert [v["label"] for v in item["videos"]] == ["sampled dynamic", BESIDE_LABEL]
    beside = item["videos"][1]
    assert beside["frames"] == FRAMES and beside["w"] == 2 * beside["h"]  # render and sample side by side
    assert (page.parent / beside["src"]).is_file() and beside["src"].startswith("index_files/")  # a relative file: opens from file://
    assert item["highlights"]["PSNR vs render (dB)"] == 21.4987 and item["highlights"]["matte IoU"] == 0.8754
    assert item["measures"]["beside_render"] == str(sample / "beside_render.mp4")
    assert item["measures"]["comparison.render"] == str(render) and "compared with the render fox-clip" in item["detail"]
    shown = summary(page)
    assert (shown["PSNR vs render"], shown["matte IoU"], shown["compared with"]) == ("21.50 dB", "0.875", "fox-clip")
    assert main([str(sample), "--out", str(tmp_path / "cli.html"), "--kind", "sample", "--workers", "1"]) == 0
    if CHROMIUM.exists():  # the page's script built the card and both previews load and play
        _, status = load_page(page.as_uri(), tmp_path / "chromium", timeout_s=120)
        assert (status["ready"], status["errors"], status["cards"], status["layout"]) == ("1", "", "1", "ok"), status
        assert status["sprites"] == status["sprites-loaded"] == status["sprites-playing"] == "2", status


def test_sample_without_comparison_and_with_a_bad_one(tmp_path):
    sample = _sample(tmp_path / "plain")
    page = write_report(sample, tmp_path / "plain.html", ONE)
    (item,) = page_index(page)["items"]
    assert [v["label"] for v in item["videos"]] == ["sampled dynamic"] and "PSNR vs render (dB)" not in item["highlights"]
    assert summary(page)["PSNR vs render"] == "-" and summary(page)["compared with a render"] == "0"

    (sample / "comparison.json").write_text(json.dumps({"render": 3, "psnr": "high", "matte_iou": 1.5, "resolution": SIZE}))
    page = write_report(sample, tmp_path / "bad.html", ONE)
    text = html.unescape(page.read_text())
    for key in ("render", "psnr", "matte_iou"):
        assert f"comparison.json: {key} must be" in text
    assert "comparison.json without beside_render.mp4" in text
    (item,) = page_index(page)["items"]
    assert item["measures"]["comparison.resolution"] == SIZE and "comparison.psnr" not in item["measures"]


def test_a_folder_of_samples_plots_each_comparison(tmp_path):
    render = _training_render(tmp_path / "renders")
    for i, (psnr, iou) in enumerate(((18.0, 0.5), (24.0, 0.9))):
        _compare(_sample(tmp_path / "samples" / f"s{i}", seed=i), render, psnr, iou)
    assert detect_kind(tmp_path / "samples") == "sample"
    page = write_report(tmp_path / "samples", tmp_path / "samples.html", ONE)
    assert [item["id"] for item in page_index(page)["items"]] == ["s0", "s1"]
    assert page_svgs(page) == {"PSNR vs render per sample": 2, "Matte IoU per sample": 2}
    # a sample among other render directories is a curation input, decided as before
    _training_render(tmp_path / "samples")
    assert detect_kind(tmp_path / "samples") == "curation"


def test_a_render_that_is_not_a_sample_is_refused_as_one(tmp_path, capsys):
    render = _training_render(tmp_path / "renders")
    assert main([str(render), "--out", str(tmp_path / "r.html"), "--kind", "sample"]) == 1
    assert capsys.readouterr().err.strip() == f"d4d-inspect: {render}: not a d4d-sample output (a render directory whose asset.json has render.engine 'd4d-sample')"
