"""A warm Blender worker process: reads jobs (JSON lines) on stdin, answers on stdout.

Started by ``d4d.rendering.api.Renderer``, never by hand. Blender's own output goes to stderr
so the reply channel stays clean. It first answers ``{"ready": true, "blender": VERSION}``.

Jobs (``op``): ``open`` {asset, allow_missing_files, allow_untextured, max_faces, contain_links, max_texture_mb} imports an
asset and replaces the one held; ``describe`` {}; ``probe`` {clip, frames}; ``analyse`` {clip,
frames}; ``render`` {out, options, layout, videos, clip, frames, times}. Each gets progress lines
``{"progress": {...}}`` (render only) and then one reply: ``{"ok": true, "result": {...}}`` or
``{"ok": false, "kind", "reason"}``. A job on no open asset fails with ``render_failed``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (the worker runs in its own session,
    so a parent killed mid-render would otherwise leave Blender running)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> int:
    _die_with_parent()
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # everything Blender (or anyone) prints goes to stderr
    import bpy

    from d4d.rendering.blender.session import AssetSession
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions
    from d4d.rendering.orbits import OrbitLayout

    def send(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    session: AssetSession | None = None

    def run(job: dict) -> dict:
        nonlocal session
        op = job["op"]
        if op == "open":
            session = None
            session = AssetSession(bpy, Path(job["asset"]), job["allow_missing_files"], job["allow_untextured"], job["max_faces"], job["contain_links"],
                                   int(job["max_texture_mb"] * 1e6))
            return session.describe()
        if session is None:
            raise AssetError("render_failed", f"{op}: no asset is open in this worker")
        if op == "describe":
            return session.describe()
        if op == "probe":
            return session.probe(job["clip"], job["frames"])
        if op == "analyse":
            return session.analyse(job["clip"], job["frames"])
        if op == "render":
            options = RenderOptions.from_dict(job["options"])
            layout = OrbitLayout.from_dict(job["layout"])
            return session.render(Path(job["out"]), options, layout, tuple(job["videos"]), job["clip"], job["frames"], job["times"],
                                  progress=lambda p: send({"progress": p}))
        raise ValueError(f"unknown op {op!r}")

    send({"ready": True, "blender": bpy.app.version_string})
    for line in sys.stdin:
        job = json.loads(line)
        try:
            reply = {"ok": True, "result": run(job)}
        except AssetError as exc:
            reply = {"ok": False, "kind": exc.kind, "reason": exc.reason}
        except Exception as exc:  # anything else inside Blender is this asset's failure, not the worker's
            traceback.print_exc()
            reply = {"ok": False, "kind": "render_failed", "reason": f"{type(exc).__name__}: {exc}"}
        send(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
