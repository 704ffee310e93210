"""One asset in this Blender process: imported once, then described, probed, analysed and rendered
as many times as the caller asks (the curation stages and every clip share the import). Needs bpy.

Never use this in a process you care about: a crash inside Blender kills its process.
``rendering.api`` drives it in an isolated worker with timeouts and a memory limit.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from d4d.rendering.blender import animation, geometry, importers, scene
from d4d.rendering.blender.actions import Snapshot, clip_by_name, find_clips, play_clip
from d4d.rendering.blender.guard import ImportGuard, check_scene_files
from d4d.rendering.contract import ANIMATED_VIDEOS
from d4d.rendering.errors import AssetError
from d4d.rendering.options import RenderOptions
from d4d.rendering.orbits import OrbitLayout, layout_videos

#: Vertices per object evaluated when probing motion along a timeline (cheap; exact counts are not needed).
PROBE_VERTICES_PER_OBJECT = 2000


class AssetSession:
    """An imported asset and what was last analysed of it.

    Args:
        bpy: the bpy module.
        path: the asset file, imported by the importer its suffix names.
        allow_missing_files: render even when linked files (textures) are missing.
        allow_untextured: render with unreadable textures unlinked (else ``unreadable_texture``).
        max_faces: fail with ``too_large`` when the imported scene has more faces (0: no limit).
        contain_links: fail with ``linked_file_outside_asset`` when the importer tries to read a
            file outside the asset's folder tree, or the imported scene names one (checked before
            any image is decoded; ``blender.guard``).
        max_texture_bytes: fail with ``too_large`` when an image declares a larger decoded size
            (read from its header before it is decoded; 0: no limit).
    """

    def __init__(self, bpy, path: Path, allow_missing_files: bool = False, allow_untextured: bool = False, max_faces: int = 0,
                 contain_links: bool = True, max_texture_bytes: int = 0):
        clock = time.perf_counter()
        self.bpy = bpy
        scene.reset(bpy)
        guard = ImportGuard(bpy, path.parent, contain_links, max_texture_bytes)
        try:
            with guard:
                self.importer = importers.import_asset(bpy, path)
        except AssetError:
            guard.raise_if_refused()
            raise
        guard.raise_if_refused()
        scene.remove_cameras_and_lights(bpy)
        self.counts = scene.scene_counts(bpy)
        check_scene_files(bpy, path.parent, contain_links, max_texture_bytes)
        self.warnings: list[str] = []
        self.missing = scene.missing_linked_files(bpy)
        if self.missing and not allow_missing_files:
            raise AssetError("missing_linked_files", f"missing linked file(s): {', '.join(self.missing[:5])}")
        unreadable = scene.unreadable_images(bpy)
        if unreadable:
            if not allow_untextured:
                raise AssetError("unreadable_texture", f"texture(s) Blender cannot decode: {', '.join(unreadable[:5])}")
            scene.drop_unreadable_textures(bpy, unreadable)
            self.warnings.append(f"unreadable_texture: rendered without {', '.join(unreadable[:5])}")
        if not geometry.renderable_objects(bpy):
            raise AssetError("no_geometry", "no renderable geometry after import")
        faces = geometry.face_count(bpy)
        if max_faces and faces > max_faces:
            raise AssetError("too_large", f"{faces} faces (limit {max_faces})")
        self.snapshot = Snapshot(bpy)
        self.clips = find_clips(bpy)
        scene.normalization_root(bpy)
        self.analysed: tuple | None = None
        self.analysis: dict | None = None
        self.import_s = time.perf_counter() - clock

    # -- what the file holds -----------------------------------------------------------------
    def describe(self) -> dict:
        """Importer, counts, warnings, the scene's frame rate, and per clip its name and the span
        of Blender frames its channels drive (None: nothing animates it), whether a cache drives it."""
        bscene = self.bpy.context.scene
        clips = []
        for clip in self.clips:
            play_clip(self.bpy, self.snapshot, clip)
            sources = animation.find_animation_sources(self.bpy)
            span = animation.animated_span(sources)
            clips.append({
                "name": clip.name, "default": clip.default, "span": list(span) if span else None,
                "cache": any(s["kind"] == "cache" and s["plays"] for s in sources),
                "sources": [{**s, "span": list(s["span"]) if s["span"] else None} for s in sources],
            })
        return {
            "importer": self.importer, "blender_version": self.bpy.app.version_string, "counts": self.counts,
            "missing_linked_files": self.missing, "warnings": self.warnings, "import_s": self.import_s,
            "fps": bscene.render.fps / bscene.render.fps_base, "scene_start": float(bscene.frame_start),
            "actions": sorted({c["name"] for c in clips if c["name"] is not None}), "clips": clips,
        }

    def probe(self, clip: str | None, frames: list[float]) -> dict:
        """Motion along a clip's timeline: for consecutive probe frames, the largest vertex
        displacement between them as a fraction of the raw scene's largest side (1.0 where the
        topology changed), and that side."""
        play_clip(self.bpy, self.snapshot, clip_by_name(self.clips, clip))
        scene.set_normalization(self.bpy, None)
        self.analysed = None
        sampled = geometry.sample_geometry(self.bpy, np.asarray(frames, dtype=np.float64), PROBE_VERTICES_PER_OBJECT)
        extent = float(np.max(sampled["bbox_max"] - sampled["bbox_min"])) if sampled["vertices"] else 0.0
        steps = []
        for a, b in zip(sampled["tracks"], sampled["tracks"][1:]):
            if a is None or b is None or a.shape != b.shape:
                steps.append(1.0)
            else:
                steps.append(float(np.abs(b - a).max() / extent) if extent > 0 and len(a) else 0.0)
        return {"extent": extent, "step_motion": steps}

    def analyse(self, clip: str | None, frames: list[float]) -> dict:
        """Evaluate the clip at ``frames`` (Blender frames, one per clip frame), normalise the scene
        over all of them and measure vertex motion; the scene stays normalised for ``render``.

        Returns ``sampled_frames``, ``normalization`` (scene.normalization), ``geometric_motion``
        (geometry.geometric_motion), ``vertices``, ``faces`` and ``analyse_s``.
        """
        key = (clip, tuple(float(f) for f in frames))
        if self.analysed == key:
            return self.analysis
        clock = time.perf_counter()
        play_clip(self.bpy, self.snapshot, clip_by_name(self.clips, clip))
        scene.set_normalization(self.bpy, None)
        frames_array = np.asarray(frames, dtype=np.float64)
        sampled = geometry.sample_geometry(self.bpy, frames_array)
        if sampled["vertices"] == 0 or not np.all(np.isfinite(sampled["bbox_min"])):
            raise AssetError("no_geometry", "the imported objects have no vertices")
        norm = scene.normalization(sampled["bbox_min"], sampled["bbox_max"])
        scene.set_normalization(self.bpy, norm)
        self.analysed = key
        self.analysis = {
            "sampled_frames": [float(f) for f in frames], "normalization": norm,
            "geometric_motion": geometry.geometric_motion(sampled["tracks"], norm["scale"]),
            "vertices": sampled["vertices"], "faces": sampled["faces"], "analyse_s": time.perf_counter() - clock,
        }
        return self.analysis

    # -- rendering ---------------------------------------------------------------------------
    def render(self, out_dir: Path, options: RenderOptions, layout: OrbitLayout, videos: tuple[str, ...], clip: str | None,
               frames: list[float], times: list[float], progress=None) -> dict:
        """Render ``videos`` with the cameras of ``layout`` and the engine settings of ``options``
        into ``out_dir/<video>/NNN.png``, for the clip sampled at ``frames`` (analysing it first
        unless that was the last analysis).

        The scene is evaluated once per time, not once per image: the static orbits are all
        rendered at the first time, then for each time every animated video's image is rendered
        before the clock moves on (only the camera changes between those renders, which
        Cycles' persistent data keeps cheap). For a heavy rig, evaluation costs more than a
        small render. ``progress`` gets {"stage": "frames", "done", "total"} after each image.

        Returns ``lights`` (what was added), ``videos`` (in render order) and ``timings``
        (``render_static_s`` for the static orbits, ``render_animated_s`` for the others).
        """
        self.analyse(clip, frames)
        bpy = self.bpy
        scene.remove_d4d_objects(bpy)
        scene.configure_engine(bpy, options)
        lights = scene.add_lights(bpy, options.seed)
        camera = scene.add_camera(bpy, options.fov_deg)
        cameras = layout_videos(layout, videos, np.asarray(times))
        for name in cameras:
            (out_dir / name).mkdir(parents=True, exist_ok=True)
        still = [v for v in cameras if v not in ANIMATED_VIDEOS]
        moving = [v for v in cameras if v in ANIMATED_VIDEOS]
        total, done = sum(len(v) for v in cameras.values()), 0

        def shoot(video, i: int) -> None:
            nonlocal done
            scene.set_camera(camera, video.c2w[i])
            path = out_dir / video.files[i]
            bpy.context.scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True)
            if not path.exists():
                raise AssetError("render_failed", f"Blender wrote no image for {path.name}")
            done += 1
            if progress is not None:
                progress({"stage": "frames", "done": done, "total": total})

        timings = {}
        clock = time.perf_counter()
        if still:
            geometry.set_frame(bpy, frames[0])
            for name in still:
                for i in range(len(cameras[name])):
                    shoot(cameras[name], i)
            timings["render_static_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if moving:
            for i, frame in enumerate(frames):
                geometry.set_frame(bpy, frame)
                for name in moving:
                    shoot(cameras[name], i)
            timings["render_animated_s"] = time.perf_counter() - clock
        return {"lights": lights, "videos": still + moving, "timings": timings}
