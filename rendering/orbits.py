"""The cameras of a render: one orbit layout, and the videos it gives (docs/conventions.md).

The renderer, the shards and d4d-sample all place cameras with ``layout_videos``, so a model
trained on renders made with one layout writes its samples with exactly those cameras.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from d4d.rendering.cameras import DEFAULT_FOV_DEG, orbit_azimuths, orbit_c2w
from d4d.rendering.contract import ANIMATED_VIDEOS, RenderSample, VideoFrames, frame_file


@dataclass(frozen=True)
class OrbitLayout:
    """Where the cameras of a render are. Camera conventions: docs/conventions.md."""

    frames: int = 24
    """T, views per orbit (and frames of the front video)."""
    distance: float = 2.0
    """Camera distance from the origin, in normalised-scene units (the asset's largest side is 1)."""
    elevation_deg: float = 0.0
    """Orbit elevation above the XY plane, degrees."""
    fov_deg: float = DEFAULT_FOV_DEG
    """Horizontal field of view, degrees."""
    azimuth_start_deg: float = 0.0
    """Azimuth of the first orbit view and of the front camera, degrees (0: the front, -Y)."""
    closed: bool = False
    """True: the first and last views share a pose (0 and 360 degrees), as the released script
    renders; False: all T views are 360/T degrees apart."""
    second_start_deg: float | None = None
    """Start azimuth of the second orbit (videos "dynamic2" and "static2"), degrees; None: no second orbit."""

    def azimuths(self, second: bool = False) -> np.ndarray:
        """[T] azimuths of the orbit (or of the second orbit), degrees."""
        return orbit_azimuths(self.frames, self.second_start_deg if second else self.azimuth_start_deg, closed=self.closed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OrbitLayout:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"orbit layout: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**data)


def layout_from_cameras(camera_angle_x: float, azimuths_deg: np.ndarray, c2w: np.ndarray) -> OrbitLayout:
    """The layout of an orbit given by its horizontal field of view (radians), azimuths [T]
    (degrees) and cameras [T, 4, 4] (OpenGL camera-to-world, looking at the origin); closed
    when its last view repeats the first pose. Rounded to 1e-6 so equal layouts compare equal."""
    centre = np.asarray(c2w, dtype=np.float64)[0, :3, 3]
    distance = float(np.linalg.norm(centre))
    azimuths = np.asarray(azimuths_deg, dtype=np.float64)
    return OrbitLayout(
        frames=len(azimuths), distance=round(distance, 6), elevation_deg=round(math.degrees(math.asin(centre[2] / distance)), 6),
        fov_deg=round(math.degrees(camera_angle_x), 6), azimuth_start_deg=round(float(azimuths[0]), 6),
        closed=len(azimuths) > 1 and abs(float(azimuths[-1] - azimuths[0]) - 360.0) < 1e-3,
    )


def layout_videos(layout: OrbitLayout, videos: tuple[str, ...], times: np.ndarray) -> dict[str, VideoFrames]:
    """Cameras, times and file names of ``videos`` (no pixels: ``rgba`` is [T, 0, 0, 4]).

    Args:
        layout: the cameras.
        videos: names among "dynamic" (orbit while the asset animates), "static" (same
            cameras, asset frozen at time 0), "front" (fixed camera at the start azimuth while
            the asset animates), and "dynamic2" / "static2" (the same from the second start
            azimuth; the layout must have one).
        times: [T] normalised animation time of each frame of the animated videos.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (layout.frames,):
        raise ValueError(f"times must be [{layout.frames}], got {times.shape}")
    if {"dynamic2", "static2"} & set(videos) and layout.second_start_deg is None:
        raise ValueError("videos dynamic2 / static2 need a layout with second_start_deg")
    azimuths = {"dynamic": layout.azimuths, "static": layout.azimuths, "front": lambda: np.full(layout.frames, layout.azimuth_start_deg),
                "dynamic2": lambda: layout.azimuths(second=True), "static2": lambda: layout.azimuths(second=True)}
    out = {}
    for name in videos:
        az = azimuths[name]()
        out[name] = VideoFrames(
            name=name,
            rgba=np.zeros((layout.frames, 0, 0, 4), dtype=np.uint8),
            c2w=orbit_c2w(az, layout.elevation_deg, layout.distance),
            times=times.copy() if name in ANIMATED_VIDEOS else np.zeros(layout.frames),
            azimuths_deg=np.asarray(az, dtype=np.float64),
            elevations_deg=np.full(layout.frames, float(layout.elevation_deg)),
            distances=np.full(layout.frames, float(layout.distance)),
            files=[frame_file(name, i) for i in range(layout.frames)],
        )
    return out


def second_orbit_start(seed: int, sha256: str | None) -> float:
    """The second orbit's start azimuth in [0, 360) degrees: random per asset (drawn from its
    sha256) and per run seed, and the same on every rerun."""
    key = int((sha256 or "0")[:16], 16)
    return float(np.random.default_rng([seed, key]).uniform(0.0, 360.0))


def layout_sample(root, layout: OrbitLayout, resolution: int, videos: dict[str, np.ndarray], times: np.ndarray, asset) -> RenderSample:
    """A RenderSample on ``layout`` whose videos carry the given pixels.

    Args:
        resolution: image side, pixels (square images).
        videos: name -> uint8 RGBA [T, R, R, 4] (straight alpha), or an empty [T, 0, 0, 4]
            array for frames already on disk.
        times: [T] normalised animation times.
        asset: the AssetInfo to store.
    """
    frames = layout_videos(layout, tuple(videos), times)
    for name, rgba in videos.items():
        frames[name].rgba = np.asarray(rgba)
    return RenderSample(root=root, width=resolution, height=resolution, camera_angle_x=math.radians(layout.fov_deg), videos=frames, asset=asset)
