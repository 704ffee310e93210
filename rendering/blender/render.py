"""Render one asset inside the current Blender process. Needs bpy; called by rendering.worker.

Never call this in a process you care about: a crash inside Blender kills its process.
rendering.api runs it in an isolated worker with a timeout.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.blender import animation, geometry, importers, scene
from d4d.rendering.contract import read_rgba
from d4d.rendering.errors import AssetError
from d4d.rendering.manifest import ASSET_SCHEMA_VERSION, frame_file, transforms_json, video_cameras
from d4d.rendering.options import RenderOptions
from d4d.rendering.timeline import sample_timeline, trim_still_ends

#: Largest vertex displacement (normalised-scene units) below which an "animated" asset is still.
STILL_DISPLACEMENT = 1e-5
#: Frames probed to find where a cache (Alembic, USD) really moves.
CACHE_PROBES = 65


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2))


def _render_frame(bpy, path: Path) -> None:
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if not path.exists():
        raise AssetError("render_failed", f"Blender wrote no image for {path.name}")


def render_in_process(
    bpy, asset_path: Path, out_dir: Path, options: RenderOptions, source: dict, allow_missing_files: bool = False, progress=None
) -> dict:
    """Import, analyse, normalise and render ``asset_path`` into ``out_dir``; returns asset.json's content.

    ``source`` (path, sha256, format, size_bytes) is computed by the caller; ``progress`` is
    called with {"stage", "done", "total"} after each rendered frame. Raises AssetError.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    scene.reset(bpy)
    importer = importers.import_asset(bpy, asset_path)
    scene.remove_cameras_and_lights(bpy)
    counts = scene.scene_counts(bpy)
    timings["import_s"] = time.perf_counter() - clock

    missing = scene.missing_linked_files(bpy)
    if missing and not allow_missing_files:
        raise AssetError("missing_linked_files", f"missing linked file(s): {', '.join(missing[:5])}")
    if not geometry.renderable_objects(bpy):
        raise AssetError("no_geometry", "no renderable geometry after import")

    clock = time.perf_counter()
    bscene = bpy.context.scene
    if options.action is not None:
        animation.select_action(bpy, options.action)
    sources = animation.find_animation_sources(bpy)
    span = animation.animated_span(sources)
    if span is not None and any(s["kind"] == "cache" and s["plays"] for s in sources):
        # Caches carry no keys to read a span from: probe the geometry and drop still ends.
        probe = np.linspace(span[0], span[1], CACHE_PROBES)
        span = trim_still_ends(probe, geometry.sample_geometry(bpy, probe, max_vertices_per_object=2000)["tracks"]) or span
    sampling = sample_timeline(span, options.frames, float(bscene.frame_start))
    sampled = geometry.sample_geometry(bpy, sampling.frames)
    if sampled["vertices"] == 0 or not np.all(np.isfinite(sampled["bbox_min"])):
        raise AssetError("no_geometry", "the imported objects have no vertices")
    norm = scene.normalization(sampled["bbox_min"], sampled["bbox_max"])
    motion = geometry.geometric_motion(sampled["tracks"], norm["scale"])
    if sampling.has_animation and motion["comparable"] and motion["max_displacement"] < STILL_DISPLACEMENT:
        sampling = replace(sampling, has_animation=False, reason=f"no animation: channels drive frames {sampling.start:g}..{sampling.end:g} but no vertex moves")
    scene.apply_normalization(bpy, norm)
    timings["analyse_s"] = time.perf_counter() - clock

    scene.configure_engine(bpy, options)
    lights = scene.add_lights(bpy, options.seed)
    camera = scene.add_camera(bpy, options.fov_deg)
    cameras = video_cameras(options)
    # The static orbit first: with persistent data Cycles keeps its scene while only the camera moves.
    order = [v for v in ("static", "dynamic", "front") if v in cameras]
    for video in order:
        clock = time.perf_counter()
        (out_dir / video).mkdir(parents=True, exist_ok=True)
        for i, c2w in enumerate(cameras[video]["c2w"]):
            geometry.set_frame(bpy, sampling.frames[i] if cameras[video]["animated"] else sampling.frames[0])
            scene.set_camera(camera, c2w)
            _render_frame(bpy, out_dir / frame_file(video, i))
            if progress is not None:
                progress({"stage": video, "done": i + 1, "total": len(cameras[video]["c2w"])})
        timings[f"render_{video}_s"] = time.perf_counter() - clock
    _write_json(out_dir / "transforms.json", transforms_json(options, cameras, sampling.times))

    per_frame = None
    if "dynamic" in cameras and "static" in cameras:
        dynamic, static = (np.stack([read_rgba(out_dir / frame_file(v, i)) for i in range(options.frames)]) for v in ("dynamic", "static"))
        per_frame = motion_magnitude_per_frame(dynamic, static)
    rendered = sum(len(c["c2w"]) for c in cameras.values())
    render_s = sum(v for k, v in timings.items() if k.startswith("render_"))
    timings["render_per_frame_s"] = render_s / rendered
    counts.update(vertices=sampled["vertices"], faces=sampled["faces"])
    return {
        "schema_version": ASSET_SCHEMA_VERSION,
        "source": source,
        "importer": importer,
        "blender_version": bpy.app.version_string,
        "counts": counts,
        "missing_linked_files": missing,
        "animation": {
            "has_animation": sampling.has_animation,
            "action": options.action,
            "actions": sorted(a.name for a in bpy.data.actions),
            "reason": sampling.reason,
            "sources": [{**s, "span": list(s["span"]) if s["span"] else None} for s in sources],
            "frame_range": [sampling.start, sampling.end],
            "sampled_frames": [float(f) for f in sampling.frames],
            "fps": bscene.render.fps / bscene.render.fps_base,
            "geometric_motion": motion,
        },
        "normalization": norm,
        "render": {**options.to_dict(), "lights": lights, "videos": order},
        "timings": timings,
        "motion_magnitude": float(per_frame.mean()) if per_frame is not None else None,
        "motion_magnitude_per_frame": [float(x) for x in per_frame] if per_frame is not None else None,
        "motion_magnitude_version": MOTION_MAGNITUDE_VERSION,
    }
