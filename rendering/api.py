"""Render assets from Python: isolated, warm, bounded, atomic.

``Renderer`` keeps one Blender worker process warm across assets (no Blender start-up per
asset) while isolating each asset: a crash, a hang or a memory blow-up inside Blender becomes
an AssetError for that asset, the worker is replaced, and the next asset renders normally.
An asset is imported once (``Renderer.open``) and then analysed and rendered as often as the
caller needs: every clip and every curation stage shares that import. Output goes to a hidden
sibling directory first and is renamed into place only when complete.

    with Renderer() as renderer:
        asset = renderer.render("model.glb", "renders/model", RenderOptions())   # one clip, one call
        with renderer.open("robot.glb") as robot:                                 # every clip
            for plan in robot.clips(RenderOptions()):
                robot.render(plan, f"renders/robot/{clip_id('robot', plan)}", RenderOptions())
"""

from __future__ import annotations

import gzip
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from d4d.files import publish_dir, replace_with, sha256_file, staging_dir
from d4d.measures import MOTION_MAGNITUDE_VERSION, motion_magnitude_per_frame
from d4d.rendering.blender.importers import SUPPORTED_EXTENSIONS
from d4d.rendering.clips import ClipPlan, animation_info, clip_id, plan_clips
from d4d.rendering.contract import AssetInfo, SourceInfo, read_rgba, write_render
from d4d.rendering.errors import AssetError
from d4d.rendering.linked_files import outside_links
from d4d.rendering.options import RenderOptions
from d4d.rendering.orbits import layout_sample, second_orbit_start

#: Seconds a new worker may take to load Blender before it counts as broken.
WORKER_START_TIMEOUT_S = 120.0
#: Seconds between two looks at the worker's memory while it works.
MEMORY_POLL_S = 0.25


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one Blender worker and of the files it takes. Defaults fit a 24 GiB,
    2-core node running one worker beside Ray and the driver."""

    memory_gb: float = 8.0
    """The worker's resident memory above which it is killed and the asset fails with
    ``memory_exceeded`` (0: no limit)."""
    max_file_mb: float = 1024.0
    """Larger asset files fail with ``too_large`` before Blender sees them (0: no limit)."""
    max_faces: int = 10_000_000
    """Scenes with more faces (as stored, before modifiers) fail with ``too_large`` (0: no limit)."""
    max_texture_mb: float = 2048.0
    """An image whose header declares a larger decoded size (width x height x 4 channels x bytes
    per channel, in 10^6 bytes) fails with ``too_large`` before it is decoded (0: no limit)."""

    def __post_init__(self) -> None:
        if min(self.memory_gb, self.max_file_mb, self.max_faces, self.max_texture_mb) < 0:
            raise ValueError(f"limits must be >= 0 (0: no limit), got {self}")


@dataclass(frozen=True)
class AssetPolicy:
    """What an asset may do that d4d refuses by default."""

    allow_missing_files: bool = False
    """Render even when linked files (textures, a glTF's .bin) are missing (else ``missing_linked_files``)."""
    allow_untextured: bool = False
    """Render with undecodable textures left out, and a warning in asset.json (else ``unreadable_texture``)."""
    allow_outside_links: bool = False
    """Let the importer read linked files outside the asset's folder tree (else ``linked_file_outside_asset``)."""


def check_asset_file(path: str | Path, limits: Limits = Limits(), sha256: str | None = None) -> SourceInfo:
    """Cheap checks before Blender sees the file; returns asset.json's ``source``. Raises AssetError.

    The file is named by ``path`` as given (a link keeps its own name and suffix, which picks the
    importer: content-addressed caches store targets without extensions). ``sha256``, when the
    caller already computed it, is not computed again.
    """
    path = Path(os.path.abspath(path))
    if not path.exists():
        raise AssetError("missing_file", "no such file", str(path))
    if not path.is_file():
        raise AssetError("missing_file", "not a regular file", str(path))
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise AssetError("unsupported_format", f"unsupported format {suffix or '(none)'!r} (supported: {' '.join(SUPPORTED_EXTENSIONS)})", str(path))
    size = path.stat().st_size
    if size == 0:
        raise AssetError("empty_file", "file is empty (0 bytes)", str(path))
    if limits.max_file_mb and size > limits.max_file_mb * 1e6:
        raise AssetError("too_large", f"{size / 1e6:.0f} MB file (limit {limits.max_file_mb:g} MB)", str(path))
    return SourceInfo(path=str(path), sha256=sha256 or sha256_file(path), format=suffix.lstrip("."), size_bytes=size)


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process, bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def compress_log(path: Path) -> None:
    """Replace a finished log with ``<path>.gz`` (atomically); a log that cannot be compressed
    (a full disk) stays as it is."""
    try:
        with open(path, "rb") as log:
            replace_with(path.with_name(path.name + ".gz"), lambda tmp: _gzip_to(log, tmp))
        path.unlink()
    except OSError:
        pass


def _gzip_to(source, target: Path) -> None:
    with gzip.open(target, "wb", compresslevel=6) as out:
        shutil.copyfileobj(source, out, 1 << 20)


class Renderer:
    """A warm, isolated Blender worker.

    Args:
        max_jobs_per_worker: replace the worker after this many imported assets (bounds memory growth).
        log_dir: where each worker's Blender log goes (``worker-N.log``, gzipped to
            ``worker-N.log.gz`` when that Blender process ends: about 200 KB of Cycles lines per
            asset, a twentieth of it compressed); by default a temporary directory that
            ``close()`` removes (a failure's reason already carries the log's last line).
        on_progress: called with a dict {"stage", "done", "total"} as a render advances.
        limits: memory, file size and face bounds.
    """

    def __init__(self, max_jobs_per_worker: int = 50, log_dir: str | Path | None = None, on_progress=None, limits: Limits = Limits()):
        self.max_jobs_per_worker = max_jobs_per_worker
        self.on_progress = on_progress
        self.limits = limits
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="d4d-blender-logs-"))
        self._proc: subprocess.Popen | None = None
        self._pending = b""
        self._log_path: Path | None = None
        self._jobs = 0
        self.workers_started = 0
        self.assets_opened = 0

    # -- worker lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)  # close() may have removed it
        self._log_path = self.log_dir / f"worker-{self.workers_started}.log"
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "d4d.rendering.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        self._pending = b""
        self._jobs = 0
        self.workers_started += 1
        # Blender's start-up is not charged to the first asset's timeout.
        reply = self._read_reply(WORKER_START_TIMEOUT_S, what="start")
        if not reply.get("ready"):
            raise RuntimeError(f"Blender worker sent {reply!r} instead of its ready line")

    def _stop(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill or proc.poll() is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if not self._own_log_dir and self._log_path is not None:
            compress_log(self._log_path)

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self, kill: bool = False) -> None:
        """Stop the worker (``kill``: at once, else after its current job, at most 10 s)."""
        self._stop(kill=kill)
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None and not issubclass(exc_type, AssetError))  # an interrupt stops Blender at once

    def _log_tail(self) -> str:
        try:
            lines = [line.strip() for line in self._log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    # -- jobs -------------------------------------------------------------------------------
    def _job(self, job: dict, timeout_s: float, opened: int | None = None) -> dict:
        """Send one job and return its result. A job on an open asset names which ``open`` it
        belongs to (``assets_opened`` then): it must still be the asset the worker holds."""
        if job["op"] == "open":
            if self._proc is None or self._proc.poll() is not None or self._jobs >= self.max_jobs_per_worker:
                self._stop()
                self._start()
            self._jobs += 1
            self.assets_opened += 1
        elif opened != self.assets_opened:
            raise AssetError("crashed", "another asset was opened since; open this asset again")
        elif self._proc is None or self._proc.poll() is not None:
            raise AssetError("crashed", "the Blender worker holding this asset was replaced; open the asset again")
        try:
            self._proc.stdin.write((json.dumps(job) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; reported below
        reply = self._read_reply(timeout_s, what=job["op"])
        if not reply["ok"]:
            raise AssetError(reply["kind"], reply["reason"])
        return reply["result"]

    def _next_line(self, deadline: float) -> bytes | None:
        """The worker's next complete line (b"" at end of file), or None when the deadline passes.

        Reads the pipe's raw bytes: a buffered reader could swallow several lines at once and
        leave ``select`` waiting on an empty pipe while the reply sits in its buffer. While it
        waits it watches the worker's memory (AssetError ``memory_exceeded``).
        """
        fd = self._proc.stdout.fileno()
        limit = self.limits.memory_gb * 2**30
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(remaining, MEMORY_POLL_S))
            if not ready:
                rss = _rss_bytes(self._proc.pid)
                if limit and rss > limit:
                    self._stop(kill=True)
                    raise AssetError("memory_exceeded", f"Blender used {rss / 2**30:.1f} GiB (limit {self.limits.memory_gb:g} GiB) and was killed")
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line + b"\n"

    def _read_reply(self, timeout_s: float, what: str) -> dict:
        """The worker's next reply; progress lines on the way go to ``on_progress``."""
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._next_line(deadline)
            if line is None:
                self._stop(kill=True)
                raise AssetError("timeout", f"{what} timed out after {timeout_s:g} s (Blender killed)")
            if not line:
                code = self._proc.wait()
                tail = self._log_tail()
                self._stop(kill=True)
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                raise AssetError("crashed", f"Blender crashed ({how})" + (f": {tail}" if tail else ""))
            reply = json.loads(line)
            if "progress" not in reply:
                return reply
            if self.on_progress is not None:
                self.on_progress(reply["progress"])

    # -- assets -----------------------------------------------------------------------------
    def open(self, asset: str | Path, sha256: str | None = None, policy: AssetPolicy = AssetPolicy(), timeout_s: float = 600.0) -> OpenAsset:
        """Check ``asset`` (``check_asset_file``), import it into the worker (replacing the asset
        it held) and describe it.

        Args:
            sha256: the file's digest when the caller already computed it (not computed again).
            policy: what the asset may do that is refused by default.
            timeout_s: import time bound.

        Raises AssetError (with ``asset`` set).
        """
        try:
            source = check_asset_file(asset, self.limits, sha256)
            outside = outside_links(Path(source.path))  # also reads the format from the content and bounds a glTF's JSON
            if outside and not policy.allow_outside_links:
                raise AssetError("linked_file_outside_asset", f"links outside the asset's folder (not read): {', '.join(outside[:3])}")
            job = {"op": "open", "asset": source.path, "allow_missing_files": policy.allow_missing_files,
                   "allow_untextured": policy.allow_untextured, "max_faces": self.limits.max_faces,
                   "contain_links": not policy.allow_outside_links, "max_texture_mb": self.limits.max_texture_mb}
            description = self._job(job, timeout_s)
        except AssetError as exc:
            exc.asset = str(asset)
            raise
        return OpenAsset(self, self.assets_opened, Path(asset), source, description, policy)

    def render(self, asset: str | Path, out: str | Path, options: RenderOptions | None = None, overwrite: bool = False,
               policy: AssetPolicy = AssetPolicy()) -> AssetInfo:
        """Render one clip of ``asset`` into the directory ``out`` (docs/conventions.md): the
        animation ``options.action`` (None: what the file plays), its window ``options.window``.

        asset.json's ``uid`` is the clip id (``rendering.clips.clip_id`` of the file's sha256, as
        d4d-curate names clips) and ``asset_uid`` the sha256, so renders of several clips of one
        file shard as separate rows. Raises AssetError (with ``asset`` set) for a bad or failing
        asset, FileExistsError when ``out`` exists and ``overwrite`` is False. Nothing is left at
        ``out`` on failure.
        """
        options = options or RenderOptions()
        out = Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out}: output directory exists (use overwrite to replace it)")
        started = time.perf_counter()
        opened = self.open(asset, policy=policy, timeout_s=options.timeout_s)
        plan = opened.clip(options)

        def identify(info: AssetInfo) -> None:  # as d4d-curate names clips, so shards key them apart
            info.uid, info.asset_uid = clip_id(opened.source.sha256, plan), opened.source.sha256

        return opened.render(plan, out, options, overwrite=overwrite, annotate=identify, started=started)


class OpenAsset:
    """An asset imported in a Renderer's worker: plan its clips, analyse them, render them.

    Valid until the renderer opens another asset or its worker is replaced (a crash, a
    timeout): then every call raises AssetError("crashed").
    """

    def __init__(self, renderer: Renderer, opened: int, path: Path, source: SourceInfo, description: dict, policy: AssetPolicy = AssetPolicy()):
        self.renderer, self.opened, self.path, self.source = renderer, opened, path, source
        self.description = description
        self.policy = policy

    def __enter__(self) -> OpenAsset:
        return self

    def __exit__(self, *exc) -> None:
        pass  # the worker keeps the import until the next open; nothing to release

    def _job(self, job: dict, timeout_s: float) -> dict:
        try:
            return self.renderer._job(job, timeout_s, self.opened)
        except AssetError as exc:
            exc.asset = str(self.path)
            raise

    def _probe(self, timeout_s: float):
        return lambda clip, frames: self._job({"op": "probe", "clip": clip, "frames": frames}, timeout_s)

    def clips(self, options: RenderOptions) -> list[ClipPlan]:
        """Every clip (animation x window) of the asset, under ``options``' time sampling."""
        return plan_clips(self.description, options, self._probe(options.timeout_s))

    def clip(self, options: RenderOptions) -> ClipPlan:
        """The one clip ``options.action`` / ``options.window`` names; AssetError when there is none."""
        try:
            return plan_clips(self.description, options, self._probe(options.timeout_s), only_requested=True)[0]
        except ValueError as exc:
            raise AssetError("render_failed", str(exc), str(self.path)) from None

    def analyse(self, plan: ClipPlan, timeout_s: float = 600.0) -> AssetInfo:
        """asset.json of the clip without rendering it: animation, normalisation, geometric motion."""
        analysis = self._job({"op": "analyse", "clip": plan.name, "frames": [float(f) for f in plan.sampling.frames]}, timeout_s)
        return self._asset_info(plan, analysis)

    def _asset_info(self, plan: ClipPlan, analysis: dict) -> AssetInfo:
        d = self.description
        counts = {**d["counts"], "vertices": analysis["vertices"], "faces": analysis["faces"]}
        return AssetInfo(
            source=self.source, animation=animation_info(plan, d, analysis), importer=d["importer"], blender_version=d["blender_version"],
            counts=counts, missing_linked_files=d["missing_linked_files"], normalization=analysis["normalization"],
            timings={"import_s": d["import_s"], "analyse_s": analysis["analyse_s"]}, warnings=d["warnings"] or None,
            policy={k: v for k, v in asdict(self.policy).items() if v} or None,
        )

    def render(self, plan: ClipPlan, out: str | Path, options: RenderOptions, overwrite: bool = False,
               annotate: Callable[[AssetInfo], None] | None = None, started: float | None = None) -> AssetInfo:
        """Render ``plan`` into the directory ``out`` atomically; returns its asset.json.

        ``options.frames`` must be the plan's frame count. ``annotate`` may add to asset.json
        (the clip's identity, a caption) before it is written. FileExistsError when ``out``
        exists and ``overwrite`` is False; AssetError for a failing render (nothing is left at ``out``).
        """
        started = time.perf_counter() if started is None else started
        out = Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out}: output directory exists (use overwrite to replace it)")
        if len(plan.sampling.frames) != options.frames:
            raise ValueError(f"the clip was planned with {len(plan.sampling.frames)} frames, options ask for {options.frames}")
        frames = [float(f) for f in plan.sampling.frames]
        analysis = self._job({"op": "analyse", "clip": plan.name, "frames": frames}, options.timeout_s)
        layout = options.layout(second_orbit_start(options.seed, self.source.sha256))
        videos = options.all_videos()
        partial = staging_dir(out)
        try:
            job = {"op": "render", "out": str(partial), "options": options.to_dict(), "layout": layout.to_dict(), "videos": list(videos),
                   "clip": plan.name, "frames": frames, "times": [float(t) for t in plan.sampling.times]}
            rendered = self._job(job, options.timeout_s)
            asset = self._asset_info(plan, analysis)
            asset.render = {**options.to_dict(), "lights": rendered["lights"], "videos": rendered["videos"],
                            "warm_worker": self.renderer._jobs > 1}
            asset.timings.update(rendered["timings"])
            sample = layout_sample(partial, layout, options.resolution, {v: np.zeros((options.frames, 0, 0, 4), np.uint8) for v in videos},
                                   plan.sampling.times, asset)
            if "dynamic" in sample.videos and "static" in sample.videos:
                dynamic, static = (np.stack([read_rgba(partial / f) for f in sample.videos[v].files]) for v in ("dynamic", "static"))
                per_frame = motion_magnitude_per_frame(dynamic, static)
                asset.motion_magnitude, asset.motion_magnitude_per_frame = float(per_frame.mean()), [float(x) for x in per_frame]
                asset.motion_magnitude_version = MOTION_MAGNITUDE_VERSION
            render_s = sum(v for k, v in asset.timings.items() if k.startswith("render_"))
            asset.timings["render_per_frame_s"] = render_s / (options.frames * len(videos))
            asset.timings["total_s"] = time.perf_counter() - started
            if annotate is not None:
                annotate(asset)
            write_render(partial, sample)
            publish_dir(partial, out, overwrite=overwrite)
            return asset
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)


def render_asset(asset: str | Path, out: str | Path, options: RenderOptions | None = None, **kwargs) -> AssetInfo:
    """Render one asset with a fresh worker (see Renderer for batches)."""
    with Renderer() as renderer:
        return renderer.render(asset, out, options, **kwargs)
