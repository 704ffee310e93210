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
def wild_assets(tmp_path_factory) -> dict[str, Path]:
    """name -> path of the wild-shaped assets (d4d/testing/wild_assets.py), generated with Blender."""
    if not HAS_BPY:
        pytest.skip("bpy is not installed")
    from d4d.testing.wild_assets import ensure_wild_assets

    return ensure_wild_assets(tmp_path_factory.mktemp("wild_assets"))
