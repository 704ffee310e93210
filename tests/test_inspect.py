"""d4d-inspect: reports of a curation output (real Blender renders, real shards), a real tiny
training run and a real reconstruction, checked from the page's embedded index and, where
Chromium is installed, in a real headless browser (marker ``browser``)."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d4d.curation.config import CurationConfig
from d4d.curation.decision import REASONS, decide
from d4d.curation.procedure import decide_render
from d4d.inspection import svg
from d4d.inspection.browser import CHROMIUM, load_page
from d4d.inspection.cli import main
from d4d.inspection.curation_data import InspectError
from d4d.inspection.detect import detect_kind
from d4d.inspection.media import MAX_FRAMES, MediaStore, sprite_sheet
from d4d.inspection.model import Item, Report
from d4d.inspection.page import render_html
from d4d.inspection.report import ReportConfig, write_report
from d4d.rendering.builtin_assets import BUILTIN_ASSETS
from d4d.rendering.contract import load_render

requires_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium) is not installed")
PRE_PASS_REJECTS = 70  # decision rows without renders, so the curation report has two pages of 50


# ---------------------------------------------------------------- helpers


def page_index(page: Path) -> dict:
    """The JSON index embedded in a report page."""
    text = page.read_text()
    match = re.search(r'<script type="application/json" id="d4d-index">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def page_svgs(page: Path) -> dict[str, int]:
    """aria-label of every SVG plot -> its data-n."""
    return {label: int(n) for n, label in re.findall(r'<svg class="plot" data-kind="\w+" data-n="(\d+)"[^>]*aria-label="([^"]*)"', page.read_text())}


def chromium(url: str, tmp_path: Path, *, height: int = 2000, screenshot: Path | None = None) -> dict:
    """Open ``url`` in headless Chromium for 5 s of virtual time; the page's status attributes
    (``data-*`` of #d4d-status after its script ran), or {} when only a screenshot was asked for."""
    _, status = load_page(url, tmp_path / "chromium-profile", height=height, screenshot=screenshot, timeout_s=120)
    if screenshot:
        return {}
    assert status is not None, f"{url}: no #d4d-status in the page"
    return status


def assert_healthy(status: dict) -> None:
    assert status["ready"] == "1"
    assert status["errors"] == ""
    assert status["layout"] == "ok", status["layout"]


# ---------------------------------------------------------------- inputs made with the real components


def _result_event(uid: str, name: str, decision: dict, stage: str, render_dir: Path | None, timings: dict, caption: str | None) -> dict:
    """A d4d-curate manifest result event (pipelines/tables.py ``result_event``) for one asset."""
    return {"event": "result", "uid": uid, "name": name, "source": "builtin", "file_identifier": f"{name}.glb", "local_path": None,
            "sha256": None, "license": None, "caption": caption, "decision": decision["decision"], "reason": decision["reason"],
            "detail": decision["detail"], "stage": stage, "error_kind": decision["measures"].get("error_kind"), "attempts": 1,
            "render_dir": None if render_dir is None else str(render_dir), "worker": "w0", "measures": decision["measures"],
            "timings": timings, "time": time.time()}


@pytest.fixture(scope="module")
def curation_output(render_builtin, tmp_path_factory):
    """A curation output laid out as d4d-curate writes it, its tables written by the pipeline's own
    ``write_tables``: real renders of the built-ins decided with curation.decision.decide, the kept
    ones in real shards, rejects linking their render directory, render-free pre-pass rejects."""
    from d4d.pipelines.manifest import ManifestState
    from d4d.pipelines.tables import DecisionRows, run_stats, write_tables
    from d4d.rendering.contract import AssetInfo, read_asset
    from d4d.shards.from_render import render_uid
    from d4d.shards.writer import write_shards

    root = tmp_path_factory.mktemp("curation") / "run"
    root.mkdir()
    state, kept, captions, expected = ManifestState(rows=DecisionRows()), [], {}, {}
    started = time.time()
    for name in BUILTIN_ASSETS:
        render_dir = render_builtin(name)
        sample = load_render(render_dir)
        decision = decide_render(sample, CurationConfig()).to_json()
        uid = render_uid(render_dir, read_asset(render_dir))
        captions[uid] = f"a dynamic asset, the built-in {name} asset"
        expected[uid] = decision
        stage = "quality" if decision["decision"] == "keep" else "prepass"
        timings = {"fetch": 0.01, "prepass": sample.asset.timings["total_s"]} | ({"quality": 1.0} if stage == "quality" else {})
        state.apply(_result_event(uid, name, decision, stage, render_dir, timings, captions[uid]))
        if decision["decision"] == "keep":
            kept.append(render_dir)
    for i in range(PRE_PASS_REJECTS):
        asset = ({"error": {"kind": "import_failed", "reason": "truncated glTF", "asset": f"{i}.glb"}} if i % 10 == 0
                 else {"animation": {"has_animation": i % 2 == 0, "frame_range": [1, 4]}})
        uid = f"{i:032x}"
        expected[uid] = decide(AssetInfo.parse(asset, "test")).to_json()
        state.apply(_result_event(uid, f"a{i}", expected[uid], "prepass", None, {"fetch": 0.01, "precheck": 0.2}, None))
    report = write_shards(kept, root / "shards", captions=captions)
    assert not report.failed, report.failed
    state.apply({"event": "sharded", "uids": [render_uid(d, read_asset(d)) for d in kept]})
    write_tables(root, state, run_stats(state, len(state.results), started, time.time() - started, 1))
    return root, expected, {str(p) for p in kept}


@pytest.fixture(scope="module")
def curation_page(curation_output, tmp_path_factory):
    root, _, _ = curation_output
    return write_report(root, tmp_path_factory.mktemp("curation_report") / "report.html", ReportConfig(workers=1))


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """A real tiny d4d-train run: TensorBoard logs, checkpoints, validation MP4s, exported model."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from d4d.testing.train_fixtures import make_clips
    from d4d.training.config import preset
    from d4d.training.data import EpochBatches
    from d4d.training.train import train

    run = tmp_path_factory.mktemp("train") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(preset("tiny-text", max_steps=6, checkpointing_steps=3, validation_steps=3, log_every=1), EpochBatches(make_clips(2), 1, seed=0), run)
    finally:
        torch.set_num_threads(threads)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return run


@pytest.fixture(scope="module")
def reconstruction_output(render_builtin, tmp_path_factory):
    """A real d4d-reconstruct output of the rigid built-in's render (a few steps)."""
    import torch

    from d4d.reconstruction.cli import main as reconstruct

    out = tmp_path_factory.mktemp("recon") / "rigid"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = reconstruct([str(render_builtin("rigid")), "--out", str(out), "--preset", "fast", "--iterations", "10",
                            "--coarse-iterations", "10", "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


# ---------------------------------------------------------------- plots and previews


def test_histogram_counts_every_finite_value_once():
    rng = np.random.default_rng(0)
    values = list(rng.lognormal(6, 1.5, size=200)) + [float("nan"), None, float("inf")]
    plot = svg.histogram(values, "m", "m", bins=20)
    counts = [int(c) for c in re.findall(r"<title>[^<]*: (\d+)</title>", plot)]
    assert 'data-n="200"' in plot and sum(counts) == 200
    assert "log scale" in plot  # spans more than two decades, all positive
    assert "log scale" not in svg.histogram([0.0, 0.5, 1.0], "s", "s")
    assert 'data-n="0"' in svg.histogram([], "e", "e") and "no data" in svg.histogram([], "e", "e")


def test_bar_and_line_charts_draw_their_data():
    bars = svg.bar_chart(["keep", "too_static"], [12, 3], "d")
    assert bars.count('class="bar"') == 2 and ">12<" in bars and ">3<" in bars
    xs = list(range(5000))
    lines = svg.line_chart({"loss": (xs, [1.0 / (1 + x) for x in xs])}, "l", "step", "loss", max_points=500)
    points = re.search(r'points="([^"]*)"', lines).group(1).split()
    assert 'data-n="5000"' in lines and len(points) <= 501
    assert "log scale" in lines  # 1 .. 2e-4
    first, last = (tuple(map(float, p.split(","))) for p in (points[0], points[-1]))
    assert first[0] < last[0] and first[1] < last[1]  # x grows to the right, the loss falls (SVG y points down)


def test_axes_labels_tell_ticks_apart_and_the_legend_stays_off_the_lines():
    lr = svg.line_chart({"lr": ([0, 1, 2], [1e-4] * 3)}, "lr", "step", "lr")
    labels = re.findall(r'<text class="tick" [^>]*text-anchor="end">([^<]*)</text>', lr)
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels  # not "1.0e-04" three times
    assert 'class="legend"' not in lr  # one series: the title names it
    left = float(re.search(r'<rect class="area" x="([\d.]+)"', lr).group(1))
    assert left >= 24 + 6.5 * max(map(len, labels))  # the tick labels clear the rotated axis label
    paired = svg.line_chart({"loss": ([0, 1], [2.0, 1.0]), "loss (smoothed)": ([0, 1], [1.8, 1.2])}, "l", "step", "loss", smooths={"loss (smoothed)": "loss"})
    strokes = dict(re.findall(r'data-series="([^"]*)" fill="none" stroke="(#\w+)" stroke-opacity="([\d.]+)"', paired)[i][:2] for i in range(2))
    assert strokes["loss"] == strokes["loss (smoothed)"] and 'stroke-opacity="0.35"' in paired  # one colour, the raw line faded
    losses = svg.line_chart({f"loss{i}": ([0, 1, 2], [3.0, 2.0, 1.0 + i]) for i in range(3)}, "l", "step", "loss")
    area = re.search(r'<rect class="area" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', losses)
    bottom = float(area.group(1)) + float(area.group(2))
    legend = [float(y) for y in re.findall(r'<text class="legend" x="[\d.]+" y="([\d.]+)"', losses)]
    assert len(legend) == 3 and min(legend) > bottom + 20  # below the axis and its label
    counts = svg.histogram([0.2, 0.2], "h", "coverage", ylabel="clips")
    assert counts.count(">clips</text>") == 1
    assert re.findall(r'<text class="tick" [^>]*text-anchor="end">([^<]*)</text>', counts) == ["0", "1", "2"]  # whole counts
    assert all(float(x) >= 0 for x in re.findall(r'<text class="tick" [^>]*text-anchor="middle">([^<]*)</text>', counts))  # around 0.2


def test_nice_ticks_are_round_and_cover_the_range():
    ticks = svg.nice_ticks(0.13, 9.7)
    assert ticks[0] >= 0.13 and ticks[-1] <= 9.7 and len(ticks) >= 4
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (1, 2, 5)


def test_sprite_sheet_lays_frames_side_by_side():
    rng = np.random.default_rng(1)
    frames = np.zeros((6, 40, 60, 4), np.uint8)
    for i in range(6):
        frames[i, :, i * 10 : i * 10 + 10] = (*rng.integers(0, 256, 3), 255)
    data, count, width, height = sprite_sheet(frames, size=32)
    sheet = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)
    assert (count, width, height) == (6, 48, 32) and sheet.shape == (32, 6 * 48, 4)
    for i in range(6):
        expected = np.asarray(Image.fromarray(frames[i]).resize((48, 32), Image.BILINEAR)).astype(int)
        got = sheet[:, i * 48 : (i + 1) * 48]
        premultiplied = lambda x: np.concatenate([x[..., :3] * x[..., 3:] / 255, x[..., 3:]], -1)  # hidden colour may change
        assert np.abs(premultiplied(got) - premultiplied(expected)).mean() < 4  # lossy WebP
    assert sprite_sheet(np.zeros((300, 8, 8, 3), np.uint8), size=8)[1] == MAX_FRAMES


def test_media_store_reuses_previews_and_prunes_stale_ones(tmp_path):
    frames = np.full((3, 8, 8, 4), 200, np.uint8)
    first = MediaStore(tmp_path / "m", "m", size=16)
    a = first.put("a", *sprite_sheet(frames, 16))
    first.put("b", *sprite_sheet(frames, 16))
    second = MediaStore(tmp_path / "m", "m", size=16)
    assert second.cached("a") == a and second.cached("b") is not None and second.cached("c") is None
    third = MediaStore(tmp_path / "m", "m", size=16)
    assert third.cached("a") == a
    assert third.prune() == 1 and sorted(p.name for p in (tmp_path / "m").iterdir()) == [a.src.split("/")[1]]
    embedded = MediaStore(tmp_path / "e", "e", embed=True, size=16).put("a", *sprite_sheet(frames, 16))
    assert embedded.src.startswith("data:image/webp;base64,") and not (tmp_path / "e").exists()


# ---------------------------------------------------------------- curation


@pytest.mark.blender
def test_curation_report_shows_every_decision_and_measure(curation_output, curation_page):
    root, expected, kept_dirs = curation_output
    index = page_index(curation_page)
    items = {item["id"]: item for item in index["items"]}
    assert set(items) == set(expected) and len(index["items"]) == len(BUILTIN_ASSETS) + PRE_PASS_REJECTS
    for uid, decision in expected.items():
        item = items[uid]
        assert (item["status"], item["group"], item["detail"]) == (decision["decision"], decision["reason"], decision["detail"])
        for key, value in decision["measures"].items():
            assert item["measures"][key] == pytest.approx(value) if isinstance(value, float) else item["measures"][key] == value, key
    rendered = [items[uid] for uid in expected if not re.fullmatch(r"[0-9a-f]{32}", uid)]
    media = curation_page.with_name("report_files")
    for item in rendered:
        assert item["caption"].startswith("a dynamic asset, the built-in ")
        assert [v["label"] for v in item["videos"]] == ["dynamic", "static", "front"]
        for video in item["videos"]:
            with Image.open(media / video["src"].split("/")[1]) as sheet:
                assert sheet.size == (video["w"] * video["frames"], video["h"]) and video["frames"] == 8 and video["h"] == 128
        assert item["measures"]["motion_magnitude"] > 0 or item["group"] == "no_animation"
    assert any(item["status"] == "keep" for item in rendered) and kept_dirs  # previews decoded from the shards' VP9
    groups = {g["key"]: g for g in index["groups"]}
    for reason in {d["reason"] for d in expected.values() if d["reason"]}:
        assert groups[reason]["count"] == sum(d["reason"] == reason for d in expected.values())
        assert groups[reason]["description"] == REASONS[reason] and 1 <= len(groups[reason]["examples"]) <= 4
    plots = page_svgs(curation_page)
    assert plots["Motion magnitude m(V) per clip"] == sum(d["measures"].get("motion_magnitude") is not None for d in expected.values())
    assert plots["Decisions by reason"] == 1 + len(groups)
    assert plots["Time per pipeline stage, mean per clip"] == plots["Time per pipeline stage, total"] == 4  # fetch .. quality
    assert plots["seconds per clip, all pipeline stages"] == len(expected)
    assert plots["Render time per stage, mean per asset"] > 0  # asset.json timings of the real renders


@pytest.mark.blender
def test_rerun_reuses_previews_and_embed_writes_one_file(curation_output, curation_page, tmp_path, caplog):
    root, _, _ = curation_output
    before = {p.name: p.stat().st_mtime_ns for p in curation_page.with_name("report_files").iterdir()}
    with caplog.at_level("INFO", logger="d4d.inspect"):
        write_report(root, curation_page, ReportConfig(workers=1))
    assert "0 previews written" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in curation_page.with_name("report_files").iterdir()} == before
    single = write_report(root, tmp_path / "single.html", ReportConfig(embed=True, workers=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.html"]
    assert all(v["src"].startswith("data:image/webp") for item in page_index(single)["items"] for v in item["videos"])


@pytest.mark.blender
def test_directory_of_render_dirs_is_decided_here(render_builtin, tmp_path):
    renders = tmp_path / "renders"
    for name in ("rigid", "static"):
        shutil.copytree(render_builtin(name), renders / name)
    assert detect_kind(renders) == "curation"
    page = write_report(renders, tmp_path / "out", ReportConfig(workers=1))
    assert page == tmp_path / "out" / "index.html" and (tmp_path / "out" / "index_files").is_dir()
    items = {item["id"]: item for item in page_index(page)["items"]}
    for name in ("rigid", "static"):
        sample = load_render(renders / name)
        decision = decide(sample.asset, {k: v.rgba for k, v in sample.videos.items()})
        assert (items[name]["status"], items[name]["group"]) == (decision.decision, decision.reason)
        assert len(items[name]["videos"]) == 3
    assert items["static"]["group"] == "no_animation"


@pytest.mark.blender
def test_a_clip_rejected_at_the_quality_stage_keeps_its_render_as_preview(renderer, builtin_assets, tmp_path):
    """The pre-pass defers a front-SSIM verdict; the quality render rejects on it and becomes the
    reject's preview, which the report shows."""
    from d4d.curation.procedure import DecisionConfig, StagedDecision
    from d4d.rendering.options import RenderOptions

    (tmp_path / "scratch").mkdir()
    rules = CurationConfig(ssim_distorted=0.999999, ssim_too_static=0.999999)  # any motion is "distorted"
    config = DecisionConfig(render=RenderOptions(engine="workbench", resolution=32, frames=8), prepass_resolution=32, prepass_engine="workbench", rules=rules)
    (outcome,) = StagedDecision(config, renderer, tmp_path / "scratch").run(builtin_assets["rigid"], "rigid", tmp_path / "renders", tmp_path / "previews")
    assert (outcome.decision.decision, outcome.decision.reason, outcome.stage) == ("reject", "distorted", "quality"), outcome.decision.detail
    assert "prepass_deferred" in outcome.decision.measures
    assert outcome.render_dir == tmp_path / "previews" / outcome.clip_id and not (tmp_path / "renders" / outcome.clip_id).exists()
    assert load_render(outcome.render_dir).videos["front"].rgba.shape[:3] == (8, 32, 32)  # the quality render's frames
    (item,) = page_index(write_report(tmp_path / "previews", tmp_path / "r.html", ReportConfig(workers=1)))["items"]
    assert [v["label"] for v in item["videos"]] == ["dynamic", "static", "front"]


# ---------------------------------------------------------------- training and reconstruction


def test_training_report_plots_losses_and_plays_validation_samples(training_run, tmp_path):
    assert detect_kind(training_run) == "training"
    page = write_report(training_run, tmp_path / "train.html", ReportConfig(workers=1))
    plots = page_svgs(page)
    assert plots["Training losses"] == 3 * 6  # loss, loss_ldm, loss_mr at each of the 6 steps (log_every=1)
    assert plots["lr"] == 6 and plots["seconds_per_step"] == 6
    items = page_index(page)["items"]
    assert [item["highlights"]["step"] for item in items] == [3, 6]
    assert all(item["videos"][0]["frames"] == 4 for item in items)  # tiny-text samples 4 frames
    assert "train_config.json" in page.read_text()


def test_training_report_reads_a_jsonl_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text("{}")
    (run / "log.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 1.0 / s, "note": "x"}) for s in range(1, 11)) + "\nnot json\n")
    page = write_report(run, tmp_path / "r.html")
    assert page_svgs(page)["Training losses"] == 10
    assert "log.jsonl:11: not JSON" in page.read_text()


@pytest.mark.blender
def test_reconstruction_report_shows_turntable_input_and_psnr_per_view(reconstruction_output, tmp_path):
    assert detect_kind(reconstruction_output) == "reconstruction"
    metrics = json.loads((reconstruction_output / "metrics.json").read_text())
    page = write_report(reconstruction_output, tmp_path / "recon.html", ReportConfig(workers=1))
    (item,) = page_index(page)["items"]
    assert [v["label"] for v in item["videos"]] == ["turntable (novel views)", "input dynamic", "input static", "input front"]
    assert item["measures"]["psnr"] == pytest.approx(metrics["heldout"]["psnr"])
    assert item["measures"]["frames_ply"] == metrics["frames"]
    plots = page_svgs(page)
    assert plots["Held-out PSNR per view"] == len(metrics["heldout"]["views"]) > 0
    assert plots["Time per stage"] == len(metrics["timings_s"])
    # the preset's default history (20 held-out evaluations over the 20 steps) is kept, and every one is plotted
    assert plots["PSNR during training"] == len(metrics["history"]) == 20
    assert detect_kind(reconstruction_output.parent) == "reconstruction"  # a folder of outputs


# ---------------------------------------------------------------- hostile text in every input


#: Text that would end the index's script block, open a comment that swallows the page's own
#: script, or break an attribute, if it reached the page raw. HOSTILE_NAME: the same without
#: "/", for file and folder names.
HOSTILE = '</script><!--<script>x&amp;"\'\u2028</SCRIPT >'
HOSTILE_NAME = '<!--<script>x&amp;"\''
SHOWN = " ".join(HOSTILE.split())  # what a one-line field shows (U+2028 is a line break)


def inert_index(page: Path) -> dict:
    """The page's index, after checking that no inspected text reached the page as markup: the
    page's own two script blocks only, no comment, and a JSON block without "<", ">" or "&"."""
    text = page.read_text()
    assert len(re.findall("<script", text, re.I)) == 2 and len(re.findall("</script", text, re.I)) == 2
    assert "<!--" not in text and html.escape(HOSTILE_NAME) in text  # the folder's name is in the header, as text
    start = text.index(">", text.index('<script type="application/json" id="d4d-index"')) + 1
    block = text[start : text.index("</script>", start)]
    assert not set(block) & set("<>&\u2028\u2029")
    return json.loads(block)


def assert_runs_in_chromium(page: Path, tmp_path: Path, cards: int) -> None:
    if CHROMIUM.exists():  # the page's script ran to its end and built the cards
        status = chromium(page.as_uri(), tmp_path)
        assert (status["ready"], status["errors"], status["cards"]) == ("1", "", str(cards)), status


def _hostile_render(root: Path) -> Path:
    """A synthetic render directory whose file name, action, caption and warning are hostile,
    rendered under allow_untextured."""
    from d4d.testing.shards_helpers import make_shard_render

    render = make_shard_render(root, HOSTILE_NAME, frames=6, size=24, caption=HOSTILE)
    asset = json.loads((render / "asset.json").read_text())
    asset["animation"]["action"] = HOSTILE
    asset.update(policy={"allow_untextured": True}, warnings=[f"unreadable_texture: rendered without {HOSTILE}"])
    (render / "asset.json").write_text(json.dumps(asset))
    return render


def test_hostile_text_in_a_curation_output_stays_text(tmp_path):
    from d4d.pipelines.manifest import ManifestState
    from d4d.pipelines.tables import DecisionRows, run_stats, write_tables
    from d4d.rendering.contract import read_asset

    root = tmp_path / HOSTILE_NAME
    render = _hostile_render(root / "renders")
    sha = read_asset(render).source.sha256
    # decided here from the render directory: file name, action, caption, policy and warning
    index = inert_index(write_report(root / "renders", tmp_path / "renders.html", ReportConfig(workers=1)))
    (item,) = index["items"]
    assert item["title"] == f"{HOSTILE_NAME}.glb · {HOSTILE}" and item["caption"] == HOSTILE and sha in item["hover"]
    assert item["parent_title"] == f"{HOSTILE_NAME}.glb" and len(item["videos"]) == 3
    assert item["highlights"]["asset_policy"] == {"allow_untextured": True}
    assert item["measures"]["asset_warnings"] == [f"unreadable_texture: rendered without {HOSTILE}"]
    assert_runs_in_chromium(tmp_path / "renders.html", tmp_path, 1)

    # a curation run's tables: every text column hostile, the reject linking its render directory
    state = ManifestState(rows=DecisionRows())
    for i, uid in enumerate(("a" * 32, "b" * 32)):
        state.apply({"event": "result", "uid": uid, "asset_uid": uid, "action": HOSTILE, "name": f"{HOSTILE_NAME}{i}.glb", "source": HOSTILE,
                     "file_identifier": f"{HOSTILE}/{HOSTILE_NAME}{i}.glb", "local_path": None, "sha256": sha, "license": HOSTILE,
                     "caption": HOSTILE, "decision": "reject", "reason": HOSTILE, "detail": HOSTILE, "stage": "quality", "error_kind": HOSTILE,
                     "attempts": 1, "render_dir": str(render) if i == 0 else None, "worker": HOSTILE, "measures": {HOSTILE: HOSTILE},
                     "timings": {HOSTILE: 1.0}, "time": time.time()})
    write_tables(root, state, run_stats(state, 2, time.time(), 1.0, 1))
    page = write_report(root, tmp_path / "run.html", ReportConfig(workers=1))
    index = inert_index(page)
    items = {item["id"]: item for item in index["items"]}
    for i, uid in enumerate(("a" * 32, "b" * 32)):
        item = items[uid]
        assert (item["title"], item["caption"], item["group"], item["detail"]) == (f"{HOSTILE_NAME}{i}.glb · {HOSTILE}", HOSTILE, HOSTILE, HOSTILE)
        assert item["measures"][HOSTILE] == HOSTILE and f"sha256 {sha}" in item["hover"]
    assert len(items["a" * 32]["videos"]) == 3  # the reject's preview, from its render directory
    assert [g["key"] for g in index["groups"]] == [HOSTILE]
    assert html.unescape(HOSTILE) not in page_svgs(page) and page_svgs(page)["Decisions by reason"] == 2
    assert_runs_in_chromium(page, tmp_path, 2)


def test_hostile_text_in_a_training_run_stays_text(tmp_path):
    run = tmp_path / HOSTILE_NAME
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps({"validation_prompt": HOSTILE, "validation_steps": 0}))
    (run / "log.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 1.0 / s, "loss " + HOSTILE: 2.0 / s, HOSTILE: s}) for s in range(1, 6)))
    page = write_report(run, tmp_path / "train.html")
    inert_index(page)
    plots = {html.unescape(label): n for label, n in page_svgs(page).items()}
    assert plots["Training losses"] == 10 and plots[HOSTILE] == 5
    text = page.read_text()
    assert html.escape(HOSTILE) in text and "<b>off (validation_steps 0)</b>validation videos" in text
    assert "<section hidden><h2>Items</h2>" in text  # no cards: no empty pager
    assert_runs_in_chromium(page, tmp_path, 0)
    (run / "validation").mkdir()  # a validation video whose file name is hostile
    (run / "validation" / f"{HOSTILE_NAME}3.mp4").write_bytes((_generated_orbit(tmp_path / "orbit") / "dynamic.mp4").read_bytes())
    page = write_report(run, tmp_path / "train.html")
    (item,) = inert_index(page)["items"]
    assert item["title"] == f"validation/{HOSTILE_NAME}3.mp4" and item["videos"][0]["frames"] == 4
    assert_runs_in_chromium(page, tmp_path, 1)


def _generated_orbit(out: Path) -> Path:
    """A 4-frame d4d-sample output (written by its own writer) whose prompt is hostile."""
    from d4d.rendering.orbits import OrbitLayout
    from d4d.training.outputs import write_sample

    frames = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
    return write_sample(out, frames, OrbitLayout(frames=4), 1.0, {"task": "text", "prompt": HOSTILE})


def test_hostile_text_in_an_evaluation_stays_text(tmp_path):
    from d4d.evaluation.evaluate import COLUMNS, PAPER_ROWS, write_results

    metrics = {key: {"value": None, "n": 0, "reason": HOSTILE} for key, *_ in COLUMNS} | {"psnr": {"value": 20.0, "n": 1, "reason": None}}
    run = {"name": HOSTILE, "path": HOSTILE, "task": HOSTILE, "clips": 1, "missing": [HOSTILE], "metrics": metrics, "notes": [HOSTILE],
           "per_clip": [{"uid": HOSTILE, "psnr": 20.0, "prompt": HOSTILE, "render_dir": str(_generated_orbit(tmp_path / "gen" / HOSTILE_NAME))},
                        {"uid": "b", "skipped": HOSTILE}]}
    out = tmp_path / HOSTILE_NAME
    write_results({"schema": "d4d-eval", "version": 1, "heldout": HOSTILE, "heldout_clips": 1, "config": {"prompt": HOSTILE}, "runs": [run],
                   "paper": [{"task": task, **values} for task, values in PAPER_ROWS]}, out)
    page = write_report(out, tmp_path / "eval.html")
    index = inert_index(page)
    assert [(item["title"], item["group"], item["measures"].get("prompt")) for item in index["items"]] == [(HOSTILE, HOSTILE, HOSTILE), ("b", HOSTILE, None)]
    assert index["items"][1]["detail"] == f"skipped: {HOSTILE}" and index["items"][0]["videos"][0]["label"] == "generated orbit"
    assert_runs_in_chromium(page, tmp_path, 2)


def test_hostile_text_in_a_reconstruction_stays_text_and_its_history_is_plotted(tmp_path):
    from d4d.inspection.reconstruction_view import psnr_history

    out = tmp_path / HOSTILE_NAME
    out.mkdir()
    (out / "canonical.ply").write_bytes(b"")
    history = [{"step": 10, "stage": HOSTILE, "psnr": 15.0}, {"step": 20, "stage": HOSTILE, "psnr": 18.0},
               {"step": 5, "stage": "fine", "psnr": 19.0}, {"step": 10, "stage": "fine", "psnr": 21.0}, {"step": "x", "psnr": 1.0}]
    (out / "metrics.json").write_text(json.dumps({
        "input": HOSTILE, "backend": HOSTILE, "heldout": {"psnr": 21.0, "ssim": 0.5, "views": [{"video": HOSTILE, "index": 0, "psnr": 21.0, "ssim": 0.5}]},
        "history": history, "timings_s": {HOSTILE: 1.0}, "config": {HOSTILE: HOSTILE}}))
    page = write_report(out, tmp_path / "recon.html")
    (item,) = inert_index(page)["items"]
    assert item["measures"]["input"] == HOSTILE and item["measures"]["backend"] == HOSTILE
    assert page_svgs(page)["PSNR during training"] == 4
    # steps count over all stages: the fine stage's steps 5 and 10 come after the coarse stage's 20
    assert psnr_history(history) == {HOSTILE: ([10.0, 20.0], [15.0, 18.0]), "fine": ([25.0, 30.0], [19.0, 21.0])}
    assert_runs_in_chromium(page, tmp_path, 1)


def test_an_allowed_untextured_render_is_flagged_in_its_decision():
    from d4d.rendering.contract import AnimationInfo, AssetInfo

    asset = AssetInfo(animation=AnimationInfo(has_animation=True, frame_range=[1.0, 49.0], fps=24.0))
    assert decide(asset).detail == "" and "asset_policy" not in decide(asset).measures
    asset.policy, asset.warnings = {"allow_untextured": True}, ["unreadable_texture: rendered without skin.jpg"]
    decision = decide(asset)
    assert decision.kept and decision.detail == "rendered under allow_untextured; unreadable_texture: rendered without skin.jpg"
    assert decision.measures["asset_policy"] == {"allow_untextured": True} and decision.measures["asset_warnings"] == asset.warnings


# ---------------------------------------------------------------- CLI


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 1
    assert capsys.readouterr().err.strip() == f"d4d-inspect: {tmp_path / 'missing'}: not a directory"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 1
    assert "not a curation output" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--out", "x.html", "--per-page", "0"])
    assert exc.value.code == 2
    with pytest.raises(InspectError, match="unknown|unexpected"):
        write_report(tmp_path / "empty", tmp_path / "r.html", ReportConfig(kind="curation"), curation_config={"nope": 1})


# ---------------------------------------------------------------- in the browser


@requires_chromium
@pytest.mark.browser
@pytest.mark.blender
def test_page_plays_previews_and_renders_plots_in_chromium(curation_page, tmp_path):
    status = chromium(curation_page.as_uri(), tmp_path)
    assert_healthy(status)
    assert (status["page"], status["pages"], status["items"], status["cards"]) == ("1", "2", str(len(BUILTIN_ASSETS) + PRE_PASS_REJECTS), "50")
    assert int(status["plots"]) >= 4
    loaded, playing = int(status["sprites-loaded"]), int(status["sprites-playing"])
    assert loaded > 0 and playing == loaded  # lazy: only those near the viewport load; each that loaded plays
    kept = chromium(curation_page.as_uri() + "#status=keep", tmp_path, height=6000)
    assert_healthy(kept)
    assert int(kept["sprites"]) > 0 and kept["sprites-loaded"] == kept["sprites"] == kept["sprites-playing"]


@requires_chromium
@pytest.mark.browser
@pytest.mark.blender
def test_hash_selects_page_and_group(curation_page, tmp_path):
    index = page_index(curation_page)
    status = chromium(curation_page.as_uri() + "#page=2", tmp_path)
    assert_healthy(status)
    assert (status["page"], status["cards"], status["first-card"]) == ("2", str(len(index["items"]) - 50), index["items"][50]["id"])
    group = index["groups"][-1]
    status = chromium(curation_page.as_uri() + f"#group={group['key']}", tmp_path)
    members = [item["id"] for item in index["items"] if item["group"] == group["key"]]
    assert (status["items"], status["first-card"]) == (str(group["count"]), members[0])


@requires_chromium
@pytest.mark.browser
@pytest.mark.blender
def test_screenshot_layout(curation_page, tmp_path):
    status = chromium(curation_page.as_uri(), tmp_path, height=3000)
    boxes = json.loads(status["boxes"])
    shot = tmp_path / "shot.png"
    chromium(curation_page.as_uri(), tmp_path, height=3000, screenshot=shot)
    image = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert image.shape == (3000, 1280, 3)
    (x0, y0, w0, _), (x1, y1, w1, _) = boxes["plot0"], boxes["plot1"]
    assert y0 == y1 and x0 < 30 and x1 + w1 > 1280 - 30 and w0 == w1  # plots side by side across the page width

    def region(name):
        x, y, w, h = boxes[name]
        return image[y : y + h, x : x + w]

    assert region("header").mean() < 100  # the dark title bar is at the top
    for name in ("plot0", "plot1", "example0"):
        x, y, w, h = boxes[name]
        assert y + h <= 3000, name
        pixels = region(name)
        assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name  # drawn, not blank


@requires_chromium
@pytest.mark.browser
def test_thousands_of_items_page_quickly(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 4), dtype=np.uint8)
    store = MediaStore(tmp_path / "big_files", "big_files", size=64)
    sprites = [store.put(f"k{i}", *sprite_sheet(frames, 64)) for i in range(3)]
    report = Report(kind="curation", title="big", source="synthetic")
    report.items = [Item(id=f"asset{i:05d}", title=f"asset{i:05d}", status="keep", videos=list(zip(("dynamic", "static", "front"), sprites)),
                     measures={"motion_magnitude": float(i)}) for i in range(3000)]
    page = tmp_path / "big.html"
    page.write_text(render_html(report))
    status = chromium(page.as_uri() + "#page=37", tmp_path)
    assert_healthy(status)
    assert (status["pages"], status["cards"], status["first-card"]) == ("60", "50", "asset01800")


@requires_chromium
@pytest.mark.browser
def test_training_page_in_chromium(training_run, tmp_path):
    page = write_report(training_run, tmp_path / "train.html", ReportConfig(workers=1))
    status = chromium(page.as_uri(), tmp_path)
    assert_healthy(status)
    assert status["cards"] == "2" and status["sprites-playing"] == status["sprites"] == "2"
    assert int(status["plots"]) == 3
