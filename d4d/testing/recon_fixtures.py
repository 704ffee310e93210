"""Synthetic, contract-conforming render directories for the reconstruction tests.

Two ray-cast spheres with Lambertian shading under a fixed world light (so the scene is
view-consistent, as a real render is): a large two-tone sphere at rest and a smaller
two-tone sphere that moves across the unit cube over time, written through the render
contract's ``write_render`` (docs/conventions.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from d4d.rendering.cameras import DEFAULT_FOV_DEG, focal_from_fov
from d4d.rendering.contract import AnimationInfo, AssetInfo, SourceInfo, write_render
from d4d.rendering.orbits import OrbitLayout, layout_sample

LIGHT = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])


def spheres_at(t: float) -> list[tuple[np.ndarray, float, np.ndarray, np.ndarray]]:
    """(centre [3], radius, colour of the +x half [3], colour of the -x half [3]) of each sphere at time t."""
    moving = np.array([0.28 * math.cos(math.pi * t), 0.28 * math.sin(math.pi * t) - 0.1, 0.22 - 0.3 * t])
    return [
        (np.array([0.0, 0.05, -0.12]), 0.26, np.array([0.85, 0.25, 0.2]), np.array([0.95, 0.8, 0.3])),
        (moving, 0.14, np.array([0.2, 0.45, 0.9]), np.array([0.3, 0.85, 0.45])),
    ]


def raycast(c2w: np.ndarray, width: int, height: int, focal: float, t: float, supersample: int = 2) -> np.ndarray:
    """uint8 RGBA [H, W, 4] of the scene at time t seen by an OpenGL camera-to-world c2w [4, 4]."""
    s = supersample
    u = (np.arange(width * s) + 0.5) / s
    v = (np.arange(height * s) + 0.5) / s
    uu, vv = np.meshgrid(u, v)
    dirs_cam = np.stack([(uu - width / 2) / focal, -(vv - height / 2) / focal, -np.ones_like(uu)], -1)
    dirs = dirs_cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origin = c2w[:3, 3]
    best = np.full(uu.shape, np.inf)
    rgb = np.zeros(uu.shape + (3,))
    for centre, radius, col_pos, col_neg in spheres_at(t):
        oc = origin - centre
        b = dirs @ oc
        disc = b**2 - (oc @ oc - radius**2)
        hit = disc > 0
        depth = np.where(hit, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        closer = hit & (depth > 0) & (depth < best)
        point = origin + dirs * np.where(closer, depth, 0.0)[..., None]
        normal = (point - centre) / radius
        albedo = np.where((normal[..., 0] > 0)[..., None], col_pos, col_neg)
        shade = 0.35 + 0.65 * np.clip(normal @ LIGHT, 0, 1)
        rgb = np.where(closer[..., None], albedo * shade[..., None], rgb)
        best = np.where(closer, depth, best)
    alpha = np.isfinite(best).astype(np.float64)
    rgba = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1)
    rgba = rgba.reshape(height, s, width, s, 4).mean(axis=(1, 3))
    rgba[..., :3] = np.where(rgba[..., 3:] > 0, rgba[..., :3] / np.maximum(rgba[..., 3:], 1e-8), 0)  # straight alpha
    return np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)


def make_sphere_render(out: Path, resolution: int = 64, frames: int = 24, videos: tuple[str, ...] = ("dynamic", "static")) -> Path:
    """Write a render directory of the two-sphere scene and return it."""
    out = Path(out)
    focal = focal_from_fov(DEFAULT_FOV_DEG, resolution)
    asset = AssetInfo(source=SourceInfo(path="synthetic:two-spheres", format="synthetic"),
                      animation=AnimationInfo(has_animation=True, reason="analytic motion"))
    empty = {v: np.zeros((frames, 0, 0, 4), np.uint8) for v in videos}
    sample = layout_sample(out, OrbitLayout(frames=frames), resolution, empty, np.linspace(0.0, 1.0, frames), asset)
    for video in sample.videos.values():
        video.rgba = np.stack([raycast(c2w, resolution, resolution, focal, t) for c2w, t in zip(video.c2w, video.times)])
    write_render(out, sample)
    return out
