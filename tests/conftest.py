"""Shared fixtures: real Blender renders of the built-in assets, made once per test session."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HAS_BPY = importlib.util.find_spec("bpy") is not None
SHARED_ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "objaverse-xl-test-files"
ASSIMP_MODELS = Path("/usr/share/assimp/models")

requires_bpy = pytest.mark.skipif(not HAS_BPY, reason="bpy (Blender as a Python module) is not installed")


@pytest.fixture(scope="session")
def builtin_assets(tmp_path_factory) -> dict[str, Path]:
    """name -> .glb path of every built-in animated asset (generated with Blender)."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    from d4d.rendering.builtin_assets import ensure_builtin_assets

    return ensure_builtin_assets(tmp_path_factory.mktemp("builtin_assets"))


@pytest.fixture(scope="session")
def renderer():
    """One warm Blender worker shared by the session's render tests."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    from d4d.rendering.api import Renderer

    with Renderer() as r:
        yield r


@pytest.fixture(scope="session")
def render_builtin(builtin_assets, renderer, tmp_path_factory):
    """render_builtin(asset, resolution=64, frames=8, engine="workbench", **options) -> render directory.

    Renders a built-in asset with real Blender once per distinct argument set and session. The
    whole animated span is squeezed into the few frames (``max_sample_step_s=None``) unless the
    test asks otherwise: windows have tests of their own.
    """
    from d4d.rendering.options import RenderOptions

    root = tmp_path_factory.mktemp("builtin_renders")
    cache: dict[tuple, Path] = {}

    def render(asset: str, resolution: int = 64, frames: int = 8, engine: str = "workbench", **options) -> Path:
        options.setdefault("max_sample_step_s", None)
        key = (asset, resolution, frames, engine, tuple(sorted(options.items())))
        if key not in cache:
            out = root / f"{asset}-{len(cache)}"
            renderer.render(builtin_assets[asset], out, RenderOptions(resolution=resolution, frames=frames, engine=engine, **options))
            cache[key] = out
        return cache[key]

    return render


@pytest.fixture(scope="session")
def exported_formats(builtin_assets, tmp_path_factory) -> Path:
    """The rigid built-in exported by Blender to every supported format, plus broken inputs (d4d/testing/blender_scenes.py)."""
    out = tmp_path_factory.mktemp("formats")
    subprocess.run(
        [sys.executable, "-m", "d4d.testing.blender_scenes", str(builtin_assets["rigid"]), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local ``ray start --head`` for the session's curation runs that join a cluster (a Ray
    start costs about 15 CPU seconds; a join about 3), on free ports with its own temp dir and
    Ray's default token authentication (the token in ``$HOME/.ray/auth_token`` of a home of its
    own, as on a real head); stopped (by pid) after. Yields ``address``, ``dashboard`` and
    ``runs`` (tests/test_pipeline_run.py's Runs whose environment reaches the cluster); a test's
    own runs join with ``join_cluster``."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    from test_pipeline_run import Runs, free_port

    from d4d.pipelines.ray_adapter import dashboard_available

    runs = Runs()
    runs.env["HOME"] = str(tmp_path_factory.mktemp("home"))
    runs.env.pop("RAY_AUTH_MODE", None)
    port, dashboard = free_port(), free_port()
    command = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--port", str(port), "--num-cpus", "2",
        "--temp-dir", runs.ray_tmp, "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--ray-client-server-port", str(free_port()),
        "--include-dashboard", "true" if dashboard_available() else "false", "--dashboard-port", str(dashboard),
    ]  # fmt: skip
    try:
        # The head's token, where Ray keeps it (a machine that ran any local Ray already has one);
        # with it, ray start --head enables token authentication. Timeouts generous: a failure
        # here fails every test that joins, and a loaded machine needs minutes where CI takes seconds.
        token = subprocess.run([command[0], "get-auth-token", "--generate"], env=runs.env, capture_output=True, text=True, timeout=300)
        assert token.returncode == 0 and (Path(runs.env["HOME"]) / ".ray" / "auth_token").is_file(), token.stderr[-2000:]
        started = subprocess.run(command, env=runs.env, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}", "runs": runs}
    finally:
        runs.close()


def join_cluster(runs, cluster: dict) -> list[str]:
    """The d4d-curate flags that make ``runs``' curation runs join the session's ``ray_cluster``
    (its home, with the token, goes into their environment) instead of starting a Ray each."""
    runs.env["HOME"] = cluster["runs"].env["HOME"]
    return ["--address", cluster["address"]]


@pytest.fixture(scope="session")
def wild_assets(tmp_path_factory) -> dict[str, Path]:
    """name -> path of the wild-shaped assets (d4d/testing/wild_assets.py), generated with Blender."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    from d4d.testing.wild_assets import ensure_wild_assets

    return ensure_wild_assets(tmp_path_factory.mktemp("wild_assets"))
