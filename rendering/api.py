"""Render assets from Python: isolated, warm, atomic.

``Renderer`` keeps one Blender worker process warm across assets (no Blender start-up per
asset) while isolating each render: a crash or a hang inside Blender becomes an AssetError
for that asset, the worker is replaced, and the next asset renders normally. Output goes to a
hidden sibling directory first and is renamed into place only when complete, so a failed
render never leaves a half-written directory.

    with Renderer() as renderer:
        for path in assets:
            asset_json = renderer.render(path, out_root / path.stem, RenderOptions())
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from d4d.rendering.blender.importers import SUPPORTED_EXTENSIONS
from d4d.rendering.errors import AssetError
from d4d.rendering.options import RenderOptions

#: Seconds a new worker may take to load Blender before it counts as broken.
WORKER_START_TIMEOUT_S = 120.0


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_asset_file(path: Path) -> dict:
    """Cheap checks before Blender sees the file; returns asset.json's ``source``. Raises AssetError."""
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
    return {"path": str(path.resolve()), "sha256": sha256_file(path), "format": suffix.lstrip("."), "size_bytes": size}


def _publish(partial: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``partial`` directory to ``out`` (replacing it only if ``overwrite``)."""
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: output directory exists (use overwrite to replace it)")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out)


class Renderer:
    """A warm, isolated Blender worker.

    Args:
        max_jobs_per_worker: replace the worker after this many assets (bounds memory growth).
        log_dir: where each worker's Blender log goes; by default a temporary directory that
            ``close()`` removes (a failure's reason already carries the log's last line).
        on_progress: called with a dict {"stage", "done", "total"} as a render advances.
    """

    def __init__(self, max_jobs_per_worker: int = 50, log_dir: str | Path | None = None, on_progress=None):
        self.max_jobs_per_worker = max_jobs_per_worker
        self.on_progress = on_progress
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="d4d-blender-logs-"))
        self._proc: subprocess.Popen | None = None
        self._pending = b""
        self._log_path: Path | None = None
        self._jobs = 0
        self.workers_started = 0

    # -- worker lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)  # close() may have removed it
        self._log_path = self.log_dir / f"worker-{self.workers_started}.log"
        log = open(self._log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "d4d.rendering.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        log.close()
        self._pending = b""
        self._jobs = 0
        self.workers_started += 1
        # Blender's start-up is not charged to the first asset's render timeout.
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

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self) -> None:
        self._stop()
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _log_tail(self) -> str:
        try:
            lines = [line.strip() for line in self._log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    # -- one job ----------------------------------------------------------------------------
    def _run_job(self, job: dict, timeout_s: float) -> dict:
        if self._proc is None or self._proc.poll() is not None or self._jobs >= self.max_jobs_per_worker:
            self._stop()
            self._start()
        self._jobs += 1
        try:
            self._proc.stdin.write((json.dumps(job) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died on start; reported below
        return self._read_reply(timeout_s, what="render")

    def _next_line(self, deadline: float) -> bytes | None:
        """The worker's next complete line (b"" at end of file), or None when the deadline passes.

        Reads the pipe's raw bytes: a buffered reader could swallow several lines at once and
        leave ``select`` waiting on an empty pipe while the reply sits in its buffer.
        """
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
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

    def render(
        self,
        asset: str | Path,
        out: str | Path,
        options: RenderOptions | None = None,
        overwrite: bool = False,
        allow_missing_files: bool = False,
    ) -> dict:
        """Render ``asset`` into the directory ``out`` (docs/conventions.md); returns asset.json's content.

        Raises AssetError (with ``asset`` set) for a bad or failing asset, FileExistsError when
        ``out`` exists and ``overwrite`` is False. Nothing is left at ``out`` on failure.
        """
        options = options or RenderOptions()
        asset, out = Path(asset), Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out}: output directory exists (use overwrite to replace it)")
        started = time.perf_counter()
        source = check_asset_file(asset)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
        partial.mkdir()
        try:
            job = {"asset": source["path"], "out": str(partial), "options": options.to_dict(), "source": source, "allow_missing_files": allow_missing_files}
            reply = self._run_job(job, options.timeout_s)
            if not reply["ok"]:
                raise AssetError(reply["kind"], reply["reason"])
            result = reply["asset"]
            result["timings"]["total_s"] = time.perf_counter() - started
            result["render"]["warm_worker"] = self._jobs > 1
            (partial / "asset.json").write_text(json.dumps(result, indent=2))
            _publish(partial, out, overwrite)
            return result
        except AssetError as exc:
            exc.asset = str(asset)
            raise
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)


def render_asset(asset: str | Path, out: str | Path, options: RenderOptions | None = None, **kwargs) -> dict:
    """Render one asset with a fresh worker (see Renderer for batches)."""
    with Renderer() as renderer:
        return renderer.render(asset, out, options, **kwargs)
