"""d4d-render with real headless Blender: outputs, importers, time sampling, normalisation, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ASSIMP_MODELS, SHARED_ASSETS, requires_bpy

pytestmark = [requires_bpy, pytest.mark.blender]


def _alpha(render_dir: Path, video: str) -> np.ndarray:
    from d4d.rendering.contract import load_render

    return load_render(render_dir, videos=(video,)).videos[video].rgba[..., 3]


def _no_leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


# -- outputs ---------------------------------------------------------------------------------


def test_render_directory_follows_the_contract(render_builtin):
    from d4d.measures import motion_magnitude
    from d4d.rendering.contract import load_render

    out = render_builtin("skinned")
    sample = load_render(out)
    assert set(sample.videos) == {"dynamic", "static", "front"}
    for name, video in sample.videos.items():
        assert video.rgba.shape == (8, 64, 64, 4) and video.rgba.dtype == np.uint8
        assert (out / name / "007.png").exists() and not (out / name / "008.png").exists()
        corners = video.rgba[:, [0, 0, -1, -1], [0, -1, 0, -1], 3]
        assert np.all(corners == 0), "background must be transparent"
        assert np.all(video.rgba[..., 3].reshape(8, -1).max(axis=1) >= 250), "every frame shows the asset"
    np.testing.assert_allclose(sample.videos["dynamic"].times, np.linspace(0, 1, 8))
    assert np.all(sample.videos["static"].times == 0)
    np.testing.assert_allclose(sample.videos["dynamic"].c2w, sample.videos["static"].c2w)
    front = sample.videos["front"].c2w
    assert np.allclose(front, front[0]), "the front camera does not move"
    np.testing.assert_allclose(np.linalg.norm(sample.videos["dynamic"].c2w[:, :3, 3], axis=1), 2.0)

    asset = json.loads((out / "asset.json").read_text())
    for key in ("source", "importer", "counts", "animation", "normalization", "render", "timings", "motion_magnitude"):
        assert key in asset
    assert asset["source"]["sha256"] and len(asset["source"]["sha256"]) == 64
    assert asset["importer"] == "gltf"
    assert asset["counts"]["armatures"] == 1 and asset["counts"]["meshes"] == 1 and asset["counts"]["vertices"] > 100
    assert asset["render"]["engine"] == "workbench"
    # motion_magnitude is the paper's Eq. 1 over the written frames, through the shared implementation.
    expected = motion_magnitude(sample.videos["dynamic"].rgba, sample.videos["static"].rgba)
    assert asset["motion_magnitude"] == pytest.approx(expected)
    assert asset["motion_magnitude"] > 50


@pytest.mark.parametrize(
    "name, frame_range, moves",
    [("rigid", (1, 48), True), ("skinned", (1, 72), True), ("shapekeys", (1, 40), True), ("late_start", (120, 180), True), ("static", None, False)],
)
def test_builtin_time_sampling_and_motion(render_builtin, name, frame_range, moves):
    asset = json.loads((render_builtin(name) / "asset.json").read_text())
    anim = asset["animation"]
    assert anim["has_animation"] is moves
    if moves:
        assert anim["frame_range"] == pytest.approx(list(frame_range))
        assert anim["sampled_frames"] == pytest.approx(list(np.linspace(*frame_range, 8)))
        assert anim["geometric_motion"]["max_displacement"] > 0.05
        assert asset["motion_magnitude"] > 50
    else:
        assert "no animation" in anim["reason"]
        assert anim["geometric_motion"]["max_displacement"] == 0.0
        assert asset["motion_magnitude"] == 0.0


def test_late_start_motion_is_found_where_frames_0_to_23_show_nothing(render_builtin, builtin_assets, tmp_path):
    # The released renderer plays Blender frames 0..23. Our geometric probe at those frames finds
    # no motion for late_start, while d4d's sampled range (120..180) moves.
    asset = json.loads((render_builtin("late_start") / "asset.json").read_text())
    assert asset["animation"]["frame_range"] == [120.0, 180.0]
    moving_sources = [s for s in asset["animation"]["sources"] if s["plays"] and s["span"]]
    assert moving_sources and all(s["span"][0] >= 120 for s in moving_sources)


def test_normalisation_keeps_moving_object_in_frame(render_builtin):
    from d4d.rendering.cameras import project
    from d4d.rendering.contract import load_render

    out = render_builtin("rigid", resolution=96)
    asset = json.loads((out / "asset.json").read_text())
    norm = asset["normalization"]
    lo, hi = np.array(norm["bbox_min"]), np.array(norm["bbox_max"])
    assert norm["scale"] * (hi - lo).max() == pytest.approx(1.0)
    # The union box over all sampled frames, normalised: centred at the origin, largest side 1.
    box_lo = lo * norm["scale"] + norm["offset"]
    box_hi = hi * norm["scale"] + norm["offset"]
    np.testing.assert_allclose((box_lo + box_hi) / 2, 0, atol=1e-6)
    corners = np.array([[x, y, z] for x in (box_lo[0], box_hi[0]) for y in (box_lo[1], box_hi[1]) for z in (box_lo[2], box_hi[2])])
    sample = load_render(out, videos=("dynamic",))
    video = sample.videos["dynamic"]
    for rgba, c2w in zip(video.rgba, video.c2w):
        alpha = rgba[..., 3] > 0
        assert not (alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any()), "asset leaves the frame"
        uv = project(corners, c2w, sample.K)
        ys, xs = np.nonzero(alpha)
        # Every visible pixel lies inside the projected union box (1.5 px for anti-aliasing).
        assert xs.min() >= uv[:, 0].min() - 1.5 and xs.max() <= uv[:, 0].max() + 1.5
        assert ys.min() >= uv[:, 1].min() - 1.5 and ys.max() <= uv[:, 1].max() + 1.5


def test_camera_handedness_plus_x_appears_on_the_right_of_the_front_view(render_builtin):
    # The rigid box's +X half is orange-red, its -X half blue (rendering/builtin_assets.py). At
    # time 0 it has not turned, so the front camera (on -Y, looking +Y) sees red right, blue left.
    from d4d.rendering.contract import load_render

    rgba = load_render(render_builtin("rigid", resolution=96), videos=("front",)).videos["front"].rgba[0].astype(float)
    mask = rgba[..., 3] > 128
    ys, xs = np.nonzero(mask)
    mid = (xs.min() + xs.max()) / 2
    right = rgba[ys[xs > mid + 2], xs[xs > mid + 2], :3].mean(axis=0)
    left = rgba[ys[xs < mid - 2], xs[xs < mid - 2], :3].mean(axis=0)
    assert right[0] > right[2] + 40 and left[2] > left[0] + 40


def test_cycles_engine_renders_and_is_deterministic(builtin_assets, renderer, tmp_path):
    from d4d.rendering.contract import load_render
    from d4d.rendering.options import RenderOptions

    opts = RenderOptions(engine="cycles", samples=2, resolution=32, frames=3, videos=("dynamic", "static"))
    first = renderer.render(builtin_assets["shapekeys"], tmp_path / "a", opts)
    renderer.render(builtin_assets["shapekeys"], tmp_path / "b", opts)
    assert first.render["engine"] == "cycles" and first.motion_magnitude > 0
    a, b = load_render(tmp_path / "a").videos["dynamic"].rgba, load_render(tmp_path / "b").videos["dynamic"].rgba
    np.testing.assert_array_equal(a, b)


# -- importers -------------------------------------------------------------------------------

ANIMATED_FORMATS = ("glb", "gltf", "fbx", "dae", "abc", "usd", "usda", "usdc", "usdz", "blend")
STATIC_FORMATS = ("obj", "stl", "ply")
IMPORTER_NAMES = {"glb": "gltf", "gltf": "gltf", "fbx": "fbx", "dae": "collada", "abc": "alembic", "usd": "usd", "usda": "usd",
                  "usdc": "usd", "usdz": "usd", "blend": "blend", "obj": "obj", "stl": "stl", "ply": "ply"}


@pytest.mark.parametrize("fmt", ANIMATED_FORMATS + STATIC_FORMATS)
def test_every_format_imports_and_animation_survives_where_the_format_keeps_it(exported_formats, renderer, tmp_path, fmt):
    from d4d.rendering.options import RenderOptions

    asset = renderer.render(exported_formats / f"rigid.{fmt}", tmp_path / fmt, RenderOptions(engine="workbench", resolution=32, frames=4, max_sample_step_s=None))
    assert asset.importer == IMPORTER_NAMES[fmt]
    assert asset.source.format == fmt
    if fmt in ANIMATED_FORMATS:
        assert asset.animation.has_animation, asset.animation.reason
        assert asset.animation.frame_range[0] == pytest.approx(1, abs=0.01)
        assert 47.9 <= asset.animation.frame_range[1] <= 52  # caches are probed in 65 steps
        assert asset.motion_magnitude > 50
    else:
        assert not asset.animation.has_animation and asset.motion_magnitude == 0.0


@pytest.mark.skipif(not SHARED_ASSETS.exists(), reason="../shared/assets is not present")
@pytest.mark.parametrize("name", sorted(p.name for p in SHARED_ASSETS.glob("*.*")) if SHARED_ASSETS.exists() else [])
def test_objaverse_xl_test_files_render_and_are_static(renderer, tmp_path, name):
    from d4d.rendering.options import RenderOptions

    asset = renderer.render(SHARED_ASSETS / name, tmp_path / "out", RenderOptions(engine="workbench", resolution=32, frames=4))
    assert asset.counts["vertices"] > 0
    assert asset.motion_magnitude == pytest.approx(0.0, abs=1e-6)
    assert not asset.animation.has_animation


ASSIMP_ANIMATED = [
    "glTF2/simple_skin/simple_skin.gltf",
    "glTF2/glTF-Sample-Models/AnimatedMorphCube-glTF/AnimatedMorphCube.gltf",
    "FBX/animation_with_skeleton.fbx",
    "FBX/huesitos.fbx",
    "Collada/box_nested_animation.dae",
    "Collada/library_animation_clips.dae",
]
ASSIMP_STATIC = ["Collada/duck.dae", "BLEND/box.blend", "OBJ/box.obj", "glTF2/BoxTextured-glTF/BoxTextured.gltf"]
ASSIMP_BROKEN = {
    "glTF2/MissingBin/BoxTextured.gltf": "missing_linked_files",
    "FBX/spider.fbx": "missing_linked_files",
    "glTF2/IndexOutOfRange/IndexOutOfRange.gltf": "import_failed",
    "glTF2/wrongTypes/badNumber.gltf": "import_failed",
    "invalid/empty.obj": "empty_file",
    "invalid/OutOfMemory.off": "unsupported_format",
}


@pytest.mark.skipif(not ASSIMP_MODELS.exists(), reason="Debian's assimp-testmodels is not installed")
@pytest.mark.parametrize("rel", ASSIMP_ANIMATED + ASSIMP_STATIC)
def test_assimp_models_render_with_the_right_animation_verdict(renderer, tmp_path, rel):
    from d4d.rendering.options import RenderOptions

    if not (ASSIMP_MODELS / rel).exists():
        pytest.skip(f"{rel} not in this assimp-testmodels version")
    asset = renderer.render(ASSIMP_MODELS / rel, tmp_path / "out", RenderOptions(engine="workbench", resolution=32, frames=6))
    animated = rel in ASSIMP_ANIMATED
    assert asset.animation.has_animation is animated, asset.animation.reason
    assert (asset.motion_magnitude > 1.0) is animated


@pytest.mark.skipif(not ASSIMP_MODELS.exists(), reason="Debian's assimp-testmodels is not installed")
@pytest.mark.parametrize("rel, kind", sorted(ASSIMP_BROKEN.items()))
def test_assimp_broken_files_fail_with_their_reason(renderer, tmp_path, rel, kind):
    from d4d.rendering.errors import AssetError

    if not (ASSIMP_MODELS / rel).exists():
        pytest.skip(f"{rel} not in this assimp-testmodels version")
    with pytest.raises(AssetError) as err:
        renderer.render(ASSIMP_MODELS / rel, tmp_path / "out")
    assert err.value.kind == kind
    assert str(ASSIMP_MODELS / rel) in str(err.value)
    assert not (tmp_path / "out").exists() and not _no_leftovers(tmp_path)


# -- failures --------------------------------------------------------------------------------


def _make_bad_inputs(tmp: Path, builtin_assets: dict, exported: Path) -> dict[str, tuple[Path, str]]:
    good = builtin_assets["rigid"].read_bytes()
    (tmp / "truncated.glb").write_bytes(good[: len(good) // 2])
    (tmp / "empty.fbx").write_bytes(b"")
    (tmp / "garbage.fbx").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp / "notes.txt").write_text("not an asset")
    return {
        "missing": (tmp / "nope.glb", "missing_file"),
        "directory": (tmp, "missing_file"),
        "empty": (tmp / "empty.fbx", "empty_file"),
        "unsupported": (tmp / "notes.txt", "unsupported_format"),
        "truncated": (tmp / "truncated.glb", "import_failed"),
        "corrupt": (tmp / "garbage.fbx", "import_failed"),
        "missing_bin": (exported / "broken" / "missing_bin.gltf", "missing_linked_files"),
        "missing_texture": (exported / "broken" / "missing_texture.obj", "missing_linked_files"),
        "no_geometry": (exported / "broken" / "no_geometry.glb", "no_geometry"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "unsupported", "truncated", "corrupt", "missing_bin", "missing_texture", "no_geometry"])
def test_bad_input_fails_cleanly_with_one_line(renderer, builtin_assets, exported_formats, tmp_path, case):
    from d4d.rendering.errors import AssetError

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path, kind = _make_bad_inputs(inputs, builtin_assets, exported_formats)[case]
    out_parent = tmp_path / "renders"
    with pytest.raises(AssetError) as err:
        renderer.render(path, out_parent / "out")
    assert err.value.kind == kind
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert not (out_parent / "out").exists()
    assert not out_parent.exists() or not _no_leftovers(out_parent)


def test_missing_texture_can_be_allowed(renderer, exported_formats, tmp_path):
    from d4d.rendering.api import AssetPolicy
    from d4d.rendering.options import RenderOptions

    asset = renderer.render(exported_formats / "broken" / "missing_texture.obj", tmp_path / "out", RenderOptions(engine="workbench", resolution=32, frames=2),
                            policy=AssetPolicy(allow_missing_files=True))
    assert asset.missing_linked_files == ["gone.png"]


def test_blend_scripts_never_auto_run(renderer, exported_formats, tmp_path, monkeypatch):
    from d4d.rendering.options import RenderOptions

    marker = tmp_path / "marker"
    monkeypatch.setenv("D4D_AUTORUN_MARKER", str(marker))
    # Control: the file really carries a script that runs when a careless loader allows it.
    control = (
        "import bpy, sys; bpy.context.preferences.filepaths.use_scripts_auto_execute = True; "
        f"bpy.ops.wm.open_mainfile(filepath={str(exported_formats / 'autorun.blend')!r}, use_scripts=True)"
    )
    subprocess.run([sys.executable, "-c", control], check=True, capture_output=True, env={**os.environ, "D4D_AUTORUN_MARKER": str(marker)}, timeout=120)
    assert marker.read_text() == "ran"
    marker.unlink()
    renderer.close()  # the next render starts a worker that sees the patched environment
    renderer.render(exported_formats / "autorun.blend", tmp_path / "out", RenderOptions(engine="workbench", resolution=32, frames=2))
    assert not marker.exists()


def test_hang_times_out_and_the_next_asset_renders(renderer, builtin_assets, exported_formats, tmp_path):
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    started = renderer.workers_started
    with pytest.raises(AssetError) as err:
        renderer.render(exported_formats / "heavy.blend", tmp_path / "heavy", RenderOptions(engine="workbench", resolution=32, frames=2, timeout_s=2))
    assert err.value.kind == "timeout" and not (tmp_path / "heavy").exists() and not _no_leftovers(tmp_path)
    asset = renderer.render(builtin_assets["static"], tmp_path / "next", RenderOptions(engine="workbench", resolution=32, frames=2))
    assert asset.counts["vertices"] > 0 and renderer.workers_started == started + 1


def test_crash_inside_blender_becomes_an_error_for_that_asset(renderer, builtin_assets, exported_formats, tmp_path):
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    renderer.render(builtin_assets["static"], tmp_path / "warm", RenderOptions(engine="workbench", resolution=32, frames=2))
    pid = renderer.worker_pid

    def crash_soon():
        time.sleep(1.0)
        os.kill(pid, signal.SIGSEGV)

    threading.Thread(target=crash_soon, daemon=True).start()
    with pytest.raises(AssetError) as err:
        renderer.render(exported_formats / "heavy.blend", tmp_path / "heavy", RenderOptions(engine="workbench", resolution=32, frames=2, timeout_s=60))
    assert err.value.kind == "crashed" and "SIGSEGV" in err.value.reason
    assert not (tmp_path / "heavy").exists() and not _no_leftovers(tmp_path)
    assert renderer.render(builtin_assets["static"], tmp_path / "after", RenderOptions(engine="workbench", resolution=32, frames=2)).motion_magnitude == 0.0


# -- command line ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "d4d.rendering.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_renders_and_refuses_to_overwrite(builtin_assets, tmp_path):
    out = tmp_path / "out"
    args = [str(builtin_assets["shapekeys"]), "--out", str(out), "--engine", "workbench", "--resolution", "32", "--frames", "3", "--videos", "dynamic", "static"]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert "motion magnitude" in done.stdout and f"preview {out / 'preview.mp4'}" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["asset.json", "dynamic", "preview.mp4", "static", "transforms.json"]
    with av.open(str(out / "preview.mp4")) as video:  # the dynamic and static orbits side by side, frame by frame
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (32, 64, 3)
    assert frames[0][0, 0].min() > 240  # the background composited over white
    again = _cli(*args)
    assert again.returncode == 1 and "exists" in again.stderr
    assert _cli(*args, "--overwrite").returncode == 0


def test_cli_bad_asset_and_bad_arguments(tmp_path):
    bad = tmp_path / "broken.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00garbage")
    done = _cli(str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "gltf importer failed" in lines[0]
    assert not (tmp_path / "out").exists()
    assert _cli(str(bad), "--out", str(tmp_path / "o"), "--engine", "povray").returncode == 2
    assert _cli(str(bad), "--out", str(tmp_path / "o"), "--frames", "1").returncode == 2


def test_progress_is_reported_per_frame(renderer, builtin_assets, tmp_path):
    from d4d.rendering.options import RenderOptions

    seen: list[dict] = []
    renderer.on_progress = seen.append
    try:
        renderer.render(builtin_assets["rigid"], tmp_path / "out", RenderOptions(engine="workbench", resolution=32, frames=3, videos=("dynamic", "front"), timeout_s=30))
    finally:
        renderer.on_progress = None
    assert [(p["stage"], p["done"]) for p in seen] == [("frames", k) for k in range(1, 7)]
    assert all(p["total"] == 6 for p in seen)


def test_worker_dies_with_its_parent_even_mid_render(builtin_assets, exported_formats, tmp_path):
    # A parent killed while Blender is busy must not leave it running (the worker has its own session).
    script = (
        "import sys; from d4d.rendering.api import Renderer; from d4d.rendering.options import RenderOptions\n"
        "r = Renderer(); r.render(sys.argv[1], sys.argv[2], RenderOptions(engine='workbench', resolution=16, frames=2))\n"
        "print(r.worker_pid, flush=True); r.render(sys.argv[3], sys.argv[4], RenderOptions(engine='workbench', resolution=16, frames=2))\n"
    )
    args = [str(builtin_assets["static"]), str(tmp_path / "a"), str(exported_formats / "heavy.blend"), str(tmp_path / "b")]
    parent = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    time.sleep(1.0)  # the worker is now busy with the heavy asset
    os.kill(worker_pid, 0)  # alive
    parent.kill()
    parent.wait()
    for _ in range(50):
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it is our zombie grandchild (it is not: it was reparented), else wait
            os.waitpid(worker_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    state = Path(f"/proc/{worker_pid}/stat").read_text().split()[2] if Path(f"/proc/{worker_pid}/stat").exists() else "gone"
    assert state in ("Z", "gone"), f"worker {worker_pid} still running after its parent died (state {state})"


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="this machine has a GPU")
def test_gpu_device_without_a_gpu_fails_with_a_clear_reason(renderer, builtin_assets, tmp_path):
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    with pytest.raises(AssetError) as err:
        renderer.render(builtin_assets["static"], tmp_path / "out", RenderOptions(engine="cycles", device="gpu", resolution=16, frames=2))
    assert err.value.kind == "render_failed" and "no GPU device" in err.value.reason
    assert not (tmp_path / "out").exists()


def test_each_action_of_a_multi_animation_asset_renders_as_its_own_clip(renderer, exported_formats, tmp_path):
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    path = exported_formats / "two_actions.glb"
    opts = dict(engine="workbench", resolution=32, frames=4, videos=("dynamic", "static"), max_sample_step_s=None)
    played = renderer.render(path, tmp_path / "default", RenderOptions(**opts))
    assert played.animation.actions == ["slide", "spin"] and played.animation.action == "slide"
    assert played.animation.frame_range == [1.0, 30.0]  # glTF import plays the first animation
    spin = renderer.render(path, tmp_path / "spin", RenderOptions(**opts, action="spin"))
    assert spin.animation.action == "spin" and spin.animation.frame_range == [1.0, 60.0]
    assert [s["name"] for s in spin.animation.sources if s["plays"]] == ["spin"]
    assert spin.motion_magnitude > 10 and spin.motion_magnitude != pytest.approx(played.motion_magnitude)
    with pytest.raises(AssetError, match="no animation named 'jump'.*'slide', 'spin'"):
        renderer.render(path, tmp_path / "jump", RenderOptions(**opts, action="jump"))
    # Each render is named as d4d-curate names the clip, so the two shard as two rows of one asset.
    from d4d.shards.writer import ShardWriteConfig, write_shards

    assert played.uid != spin.uid and played.asset_uid == spin.asset_uid == played.source.sha256
    report = write_shards([tmp_path / "default", tmp_path / "spin"], tmp_path / "shards", ShardWriteConfig(codec="lossless"))
    assert not report.failed and len(report.written) == 2


def test_an_open_asset_refuses_work_once_another_is_opened(renderer, builtin_assets):
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    options = RenderOptions(engine="workbench", resolution=16, frames=2)
    first = renderer.open(builtin_assets["rigid"])
    plan = first.clips(options)[0]
    renderer.open(builtin_assets["static"])
    with pytest.raises(AssetError, match="another asset was opened"):
        first.analyse(plan)


# -- resource bounds -------------------------------------------------------------------------


def test_resource_bounds_fail_one_asset_with_their_reason(builtin_assets, exported_formats, tmp_path):
    """A file too large, a scene with too many faces, a worker growing past its memory limit: each
    fails that asset with one line naming it, and the next asset renders."""
    from d4d.rendering.api import Limits, Renderer
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    quick = RenderOptions(engine="workbench", resolution=32, frames=2)
    cases = [
        (Limits(max_file_mb=0.001), builtin_assets["skinned"], "too_large", "MB file (limit 0.001 MB)"),
        (Limits(max_faces=10), builtin_assets["skinned"], "too_large", "faces (limit 10)"),
        (Limits(memory_gb=0.6), exported_formats / "heavy.blend", "memory_exceeded", "GiB (limit 0.6 GiB)"),
    ]
    with Renderer() as renderer:
        for limits, path, kind, words in cases:
            renderer.limits = limits
            with pytest.raises(AssetError) as err:
                renderer.render(path, tmp_path / kind, replace_timeout(quick, 120))
            assert err.value.kind == kind and words in str(err.value) and str(path) in str(err.value), err.value
            assert "\n" not in str(err.value) and not (tmp_path / kind).exists()
        renderer.limits = Limits()
        assert renderer.render(builtin_assets["static"], tmp_path / "next", quick).counts["vertices"] > 0


def replace_timeout(options, seconds):
    from dataclasses import replace

    return replace(options, timeout_s=seconds)


def test_frame_count_is_bounded():
    from d4d.rendering.options import MAX_FRAMES, RenderOptions

    with pytest.raises(ValueError, match=f"frames must be in \\[2, {MAX_FRAMES}\\]"):
        RenderOptions(frames=MAX_FRAMES + 1)


def test_linked_files_outside_the_asset_folder_are_not_read_unless_allowed(renderer, wild_assets, tmp_path):
    """A glTF whose texture URI climbs out of its folder is refused before Blender opens it; a
    Collada whose image is an absolute path elsewhere is refused inside Blender before any image
    is decoded. With the opt-in both render."""
    import shutil

    from d4d.rendering.api import AssetPolicy
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    quick = RenderOptions(engine="workbench", resolution=32, frames=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(wild_assets["outside_link"].parent.parent / "outside_texture.png", elsewhere / "secret.png")
    collada = tmp_path / "collada" / "character.dae"
    collada.parent.mkdir()
    text = wild_assets["broken_texture"].read_text()
    assert "skin.jpg" in text
    collada.write_text(text.replace("skin.jpg", str(elsewhere / "secret.png")))
    for path, words in ((wild_assets["outside_link"], "../outside_texture.png"), (collada, str(elsewhere / "secret.png"))):
        with pytest.raises(AssetError) as err:
            renderer.render(path, tmp_path / "refused" / path.stem, quick)
        assert err.value.kind == "linked_file_outside_asset" and words in str(err.value), err.value
        assert "\n" not in str(err.value) and not (tmp_path / "refused" / path.stem).exists()
    allowed = renderer.render(wild_assets["outside_link"], tmp_path / "allowed", quick, policy=AssetPolicy(allow_outside_links=True))
    assert allowed.counts["vertices"] > 0
