"""A warm Blender worker process: reads render jobs (JSON lines) on stdin, answers on stdout.

Started by rendering.api.Renderer, never by hand. Blender's own output goes to stderr so the
reply channel stays clean. It first answers {"ready": true} once Blender is loaded. One job: {"asset", "out", "options", "source",
"allow_missing_files"}; progress lines {"progress": {"stage", "done", "total"}}, then one reply: {"ok": true, "asset": {...}} or {"ok": false, "kind",
"reason"}.
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

    from d4d.rendering.blender.render import render_in_process
    from d4d.rendering.errors import AssetError
    from d4d.rendering.options import RenderOptions

    def send(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    send({"ready": True, "blender": bpy.app.version_string})
    for line in sys.stdin:
        job = json.loads(line)
        try:
            asset = render_in_process(
                bpy,
                Path(job["asset"]),
                Path(job["out"]),
                RenderOptions.from_dict(job["options"]),
                job["source"],
                allow_missing_files=job.get("allow_missing_files", False),
                progress=lambda p: send({"progress": p}),
            )
            reply = {"ok": True, "asset": asset}
        except AssetError as exc:
            reply = {"ok": False, "kind": exc.kind, "reason": exc.reason}
        except Exception as exc:  # anything else inside Blender is this asset's failure, not the worker's
            traceback.print_exc()
            reply = {"ok": False, "kind": "render_failed", "reason": f"{type(exc).__name__}: {exc}"}
        send(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
