"""Camera and orbit math, pure numpy (no Blender). The conventions are in docs/conventions.md.

World frame: Blender's, right-handed, +Z up; an asset's front faces -Y, so the front camera
sits on the -Y axis looking towards +Y.

Camera frame of every ``transform_matrix`` (camera-to-world, 4x4) d4d writes: the
NeRF-synthetic / OpenGL / Blender one: +X right, +Y up, the camera looks along -Z.
OpenCV's camera frame (+X right, +Y down, looks along +Z) is the same matrix with its Y and
Z axes negated: ``c2w_opencv = c2w_opengl @ diag(1, -1, -1, 1)``.
"""

from __future__ import annotations

import math

import numpy as np

#: Blender's default camera (35 mm lens on a 32 mm sensor), also used by the released
#: Diffusion4D / Objaverse rendering scripts: 2 * atan(16 / 35) = 49.13 degrees.
DEFAULT_FOV_DEG = math.degrees(2.0 * math.atan(16.0 / 35.0))

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def orbit_position(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Camera centre on an orbit around the origin.

    Azimuth 0 is the front (the -Y axis); azimuth grows counter-clockwise seen from above
    (towards +X). Elevation is above the XY plane. Returns shape [3], world units.
    """
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array(
        [distance * math.cos(el) * math.sin(az), -distance * math.cos(el) * math.cos(az), distance * math.sin(el)]
    )


def look_at(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world [4, 4] (OpenGL camera frame) of a camera at ``eye`` [3] looking at ``target`` [3].

    ``up`` is the world up vector (default +Z). Raises ValueError when the view direction is
    parallel to ``up`` (the roll is undefined there).
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm == 0:
        raise ValueError("look_at: eye and target coincide")
    forward /= norm
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: view direction is parallel to the up vector (elevation of +-90 degrees)")
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def orbit_azimuths(n_views: int, start_deg: float = 0.0, closed: bool = False) -> np.ndarray:
    """Azimuths [n_views] in degrees for one full turn.

    ``closed=False`` (d4d's default) spaces views 360/n apart, so all n poses differ;
    ``closed=True`` reproduces the released Diffusion4D script, where the first and last
    views share a pose (0 and 360 degrees).
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    step = 360.0 / (n_views - 1) if closed and n_views > 1 else 360.0 / n_views
    return start_deg + step * np.arange(n_views)


def orbit_c2w(azimuths_deg: np.ndarray, elevation_deg: float, distance: float) -> np.ndarray:
    """Camera-to-world matrices [N, 4, 4] (OpenGL frame) for cameras on an orbit looking at the origin."""
    return np.stack([look_at(orbit_position(a, elevation_deg, distance)) for a in np.asarray(azimuths_deg)])


def focal_from_fov(fov_deg: float, size_px: int) -> float:
    """Focal length in pixels for a field of view (degrees) spanning ``size_px`` pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    return 0.5 * size_px / math.tan(0.5 * math.radians(fov_deg))


def intrinsics(fov_x_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole intrinsics K [3, 3] (pixels, OpenCV layout, square pixels, centred principal point)."""
    f = focal_from_fov(fov_x_deg, width)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """Convert camera-to-world [..., 4, 4] from the OpenGL camera frame to OpenCV's."""
    return np.asarray(c2w) @ OPENGL_TO_OPENCV


def project(points_world: np.ndarray, c2w_opengl: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project world points [N, 3] to pixel coordinates [N, 2] (u right, v down; OpenCV)."""
    w2c = np.linalg.inv(opengl_to_opencv(c2w_opengl))
    cam = points_world @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam @ np.asarray(K).T
    return uv[:, :2] / uv[:, 2:3]
