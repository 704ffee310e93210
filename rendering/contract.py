"""The render contract (docs/conventions.md) as typed Python: one reader and one writer.

A render directory holds ``<video>/NNN.png`` frames, ``transforms.json`` (cameras and times)
and ``asset.json`` (what was rendered, how, and what it measured). ``load_render`` reads one
into a ``RenderSample``; ``write_render`` writes a ``RenderSample`` and is its exact inverse
(``load_render(write_render(d, s))`` equals ``s``). The renderer, d4d-sample and every test
fixture write through ``write_render``; shards, training, reconstruction and inspection read
through ``load_render`` (or ``read_asset`` when only asset.json is needed), so nothing parses
Blender output or hand-writes the JSON. asset.json is parsed once, into ``AssetInfo``.

Pure Python + numpy + Pillow. A directory from elsewhere is untrusted: every field is
type-checked and every frame path must stay inside the directory; a violation raises
``RenderContractError`` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from d4d.files import replace_with, write_json_atomic

#: Version of asset.json's layout; readers accept every version up to it.
ASSET_SCHEMA_VERSION = 1
#: transforms.json's ``convention`` string (docs/conventions.md).
CONVENTION = "nerf-synthetic: camera-to-world, camera +X right, +Y up, looks along -Z; world +Z up"
#: The videos a render can hold, in their canonical order: the dynamic orbit, the static orbit
#: (same cameras, asset frozen at time 0), the fixed front camera, and the second orbit's dynamic
#: and static videos (the paper's view augmentation: the same orbit from another start azimuth).
VIDEO_NAMES = ("dynamic", "static", "front", "dynamic2", "static2")
#: Videos whose frames show the asset animating (the static orbits are frozen at time 0).
ANIMATED_VIDEOS = ("dynamic", "front", "dynamic2")
TRANSFORMS_NAME = "transforms.json"
ASSET_NAME = "asset.json"

#: Bounds on the numbers of a render or a shard row, checked wherever one is read (load_render
#: here, shards.checks for shard rows; docs/security.md, "Hostile numbers"):
#: image sides in pixels,
MAX_IMAGE_SIDE = 16384
#: the horizontal field of view in degrees (the renderer's own --fov-deg range),
FOV_RANGE_DEG = (1.0, 170.0)
#: a camera's distance from the origin, scene units (the normalised asset's largest side is 1),
MAX_CAMERA_DISTANCE = 1e4
#: how far a camera's rotation may be from orthonormal (largest entry of |R^T R - I|),
RIGID_TOLERANCE = 1e-3
#: the decode budget: the bytes of a video's decoded uint8 RGBA frames, T * H * W * 4,
MAX_DECODED_BYTES = 2**30
#: and the size of transforms.json or asset.json, bytes (read no further, never parsed beyond it).
MAX_JSON_BYTES = 64 * 2**20
#: Why a camera matrix is refused, by the codes ``camera_faults`` returns (0: a good camera).
CAMERA_FAULTS = ("", "not finite", "not a rigid transform (rotation not orthonormal with determinant 1, or last row not 0 0 0 1)",
                 f"farther than {MAX_CAMERA_DISTANCE:g} units from the origin")


class RenderContractError(ValueError):
    """A render directory that does not follow the contract; the message names the file."""


# ---------------------------------------------------------------- typed asset.json


@cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _accepts(kind, value) -> bool:
    """Whether ``value`` (parsed JSON) fits the annotation ``kind`` (scalars and containers only)."""
    if value is None:
        return type(None) in typing.get_args(kind) or kind is typing.Any
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind) if k is not type(None))
    if kind is typing.Any:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(kind) or (typing.Any,)
        return isinstance(value, list) and all(_accepts(item, v) for v in value)
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(kind):
        return isinstance(value, dict)
    return isinstance(value, kind)


class Record:
    """A typed JSON object: dataclass fields for the keys d4d reads, ``extra`` for the rest.

    ``from_dict`` checks each known key's type and keeps unknown keys in ``extra``;
    ``to_dict`` writes the known keys that are not None (in field order) and then ``extra``,
    so ``to_dict(from_dict(d)) == d`` for every object d4d writes.
    """

    extra: dict

    @classmethod
    def from_dict(cls, data, where: str):
        if not isinstance(data, dict):
            raise RenderContractError(f"{where}: expected a JSON object, got {type(data).__name__}")
        values, known = {}, set()
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            known.add(f.name)
            if f.name not in data:
                continue
            value, kind = data[f.name], _hints(cls)[f.name]
            if not _accepts(kind, value):
                raise RenderContractError(f"{where}.{f.name}: {value!r:.80} is not a {kind}")
            nested = next((k for k in typing.get_args(kind) + (kind,) if dataclasses.is_dataclass(k)), None)
            values[f.name] = nested.from_dict(value, f"{where}.{f.name}") if nested is not None and value is not None else value
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None:
                out[f.name] = value.to_dict() if isinstance(value, Record) else value
        return {**out, **self.extra}


@dataclass
class SourceInfo(Record):
    """Where the rendered file came from (asset.json ``source``)."""

    path: str | None = None
    """The file the renderer imported, absolute."""
    sha256: str | None = None
    """Hex sha256 of its bytes."""
    format: str | None = None
    """Its format, the lower-case extension without the dot ("glb", "fbx", ...)."""
    size_bytes: int | None = None
    """Its size in bytes."""
    url: str | None = None
    """The source record's identifier (an Objaverse URL, or the local path), set by curation."""
    record: str | None = None
    """The source kind ("local", "objaverse-1.0", "objaverse-xl/github", ...), set by curation."""
    extra: dict = field(default_factory=dict)


@dataclass
class GeometricMotion(Record):
    """Render-free motion of the evaluated vertices against time 0, in normalised-scene units
    (the scene's largest side is 1): docs/conventions.md, "Geometric motion"."""

    max_displacement: float | None = None
    """Largest single-vertex displacement over the clip."""
    mean_displacement: float | None = None
    """Mean over frames and vertices."""
    per_frame_rms: list[float] | None = None
    """[T] root-mean-square displacement of each sampled frame."""
    comparable: bool | None = None
    """False when the topology changes over time (then the numbers above are None)."""
    extra: dict = field(default_factory=dict)


@dataclass
class AnimationInfo(Record):
    """What animates the asset and which part of its timeline was sampled (asset.json ``animation``)."""

    has_animation: bool | None = None
    """Whether anything moves over the sampled range."""
    reason: str | None = None
    """One line: why this range was chosen, or why there is no animation."""
    action: str | None = None
    """The action rendered as the clip (None: what the file plays)."""
    actions: list[str] | None = None
    """The file's animations by the names ``--action`` takes (glTF animations, FBX takes without
    their ``<object>|`` prefix, Blender actions); ``sources`` has the raw action names."""
    sources: list[dict] | None = None
    """What drives the scene: actions, NLA strips, shape keys and caches, with their spans."""
    frame_range: list[float] | None = None
    """[start, end] Blender frames of the sampled range."""
    sampled_frames: list[float] | None = None
    """[T] the Blender frame each clip frame shows."""
    fps: float | None = None
    """The scene's frame rate, frames per second of animation time."""
    geometric_motion: GeometricMotion | None = None
    """Vertex motion over the sampled frames."""
    window: dict | None = None
    """Where on the action's timeline the clip sits and why it was chosen (rendering.clips):
    ``rank`` (0: most motion), ``candidates``, ``start_frame``, ``end_frame``, ``start_s``,
    ``end_s``, ``motion``, ``rule``; None for the paper's frames 0..T-1 or no animation."""
    extra: dict = field(default_factory=dict)


@dataclass
class AssetInfo(Record):
    """asset.json: what was rendered, how, and what it measured (docs/conventions.md)."""

    schema_version: int = ASSET_SCHEMA_VERSION
    """Version of this layout (ASSET_SCHEMA_VERSION when written by this d4d)."""
    source: SourceInfo = field(default_factory=SourceInfo)
    """The file rendered."""
    animation: AnimationInfo = field(default_factory=AnimationInfo)
    """What animates it and which frames were sampled."""
    importer: str | None = None
    """The Blender importer used ("gltf", "fbx", ...)."""
    blender_version: str | None = None
    """Blender's version string."""
    counts: dict | None = None
    """Scene counts: objects, meshes, vertices, faces, armatures, shape_keys, actions, materials, images."""
    missing_linked_files: list[str] | None = None
    """Linked files (textures) that were neither packed nor on disk."""
    warnings: list[str] | None = None
    """What was rendered differently from the file because the asset policy allowed it
    (e.g. ``unreadable_texture: rendered without skin.jpg``)."""
    policy: dict | None = None
    """The allowances of the asset policy the render ran under (rendering.api.AssetPolicy
    fields that were true, e.g. ``{"allow_untextured": true}``); None: none."""
    normalization: dict | None = None
    """x' = scale * x + offset, centring the union of all sampled bounding boxes with its largest side 1:
    ``scale``, ``offset`` [3], raw ``bbox_min`` / ``bbox_max`` [3], ``computed_over``."""
    render: dict | None = None
    """The render settings (rendering.options.RenderOptions fields), ``lights`` and ``videos``."""
    timings: dict | None = None
    """Seconds per stage (import_s, analyse_s, render_static_s for the static orbits,
    render_animated_s for the others, render_per_frame_s, total_s)."""
    motion_magnitude: float | None = None
    """The paper's Eq. 1 m(V) over the dynamic and static orbits (d4d.measures, version-1 scale)."""
    motion_magnitude_per_frame: list[float] | None = None
    """[T] Eq. 1 per frame."""
    motion_magnitude_version: int | None = None
    """d4d.measures.MOTION_MAGNITUDE_VERSION of the two values above."""
    uid: str | None = None
    """The clip's id (rendering.clips.clip_id; set by d4d-curate): the source's uid of the asset
    when it is the asset's only clip. Shards key their rows by it."""
    asset_uid: str | None = None
    """The curation source's id of the asset the clip comes from."""
    license: str | None = None
    """The source's license string, when known."""
    caption: str | None = None
    """Cap3D caption (without the training prefix), when known."""
    generated: dict | None = None
    """What generated the frames, for a d4d-sample output (model, conditions, guidance, seed)."""
    error: dict | str | None = None
    """A failed render's error (rendering.errors.AssetError.to_dict()), for decision tests and tools."""
    extra: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data, where: str) -> AssetInfo:
        """``from_dict`` that also refuses a schema version newer than this d4d knows."""
        info = cls.from_dict(data, where)
        if info.schema_version > ASSET_SCHEMA_VERSION:
            raise RenderContractError(f"{where}: schema_version {info.schema_version}; this d4d reads up to {ASSET_SCHEMA_VERSION}")
        return info


# ---------------------------------------------------------------- frames and cameras


@dataclass
class VideoFrames:
    """One video of a render.

    Attributes:
        name: one of VIDEO_NAMES.
        rgba: uint8 [T, H, W, 4], straight alpha, sRGB; [T, 0, 0, 4] when pixels were not loaded.
        c2w: float64 [T, 4, 4], camera-to-world, OpenGL camera frame (docs/conventions.md).
        times: float64 [T], normalised animation time in [0, 1] shown by each frame.
        azimuths_deg, elevations_deg: float64 [T], the orbit angles of each camera, degrees.
        distances: float64 [T], camera distance from the origin, scene units.
        files: [T] frame files, relative to the render directory.
    """

    name: str
    rgba: np.ndarray
    c2w: np.ndarray
    times: np.ndarray
    azimuths_deg: np.ndarray
    elevations_deg: np.ndarray
    distances: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_pixels(self) -> bool:
        return self.rgba.size > 0


def frame_file(video: str, index: int) -> str:
    """The file of frame ``index`` of ``video``, relative to the render directory."""
    return f"{video}/{index:03d}.png"


@dataclass
class RenderSample:
    """A whole render directory.

    Attributes:
        root: the directory.
        width, height: pixels.
        camera_angle_x: horizontal field of view, radians.
        videos: name -> VideoFrames, in the order transforms.json lists them.
        asset: the parsed asset.json.
    """

    root: Path
    width: int
    height: int
    camera_angle_x: float
    videos: dict[str, VideoFrames] = field(default_factory=dict)
    asset: AssetInfo = field(default_factory=AssetInfo)

    @property
    def K(self) -> np.ndarray:
        """float64 [3, 3] pinhole intrinsics in pixels (square pixels, centred principal point)."""
        focal = 0.5 * self.width / math.tan(0.5 * self.camera_angle_x)
        return np.array([[focal, 0.0, self.width / 2.0], [0.0, focal, self.height / 2.0], [0.0, 0.0, 1.0]])

    @property
    def motion_magnitude(self) -> float | None:
        return self.asset.motion_magnitude


# ---------------------------------------------------------------- range checks of numbers read


def field_of_view_ok(angle) -> bool:
    """Whether ``angle`` (radians, the horizontal field of view) is a number in FOV_RANGE_DEG."""
    low, high = FOV_RANGE_DEG
    return _accepts(float, angle) and math.radians(low) <= angle <= math.radians(high)


def camera_faults(c2w: np.ndarray) -> np.ndarray:
    """int [N]: for each float64 [N, 4, 4] camera-to-world matrix, its index in CAMERA_FAULTS (0: good).

    A good camera is finite, a rigid transform (rotation orthonormal within RIGID_TOLERANCE with
    determinant +1, last row 0 0 0 1) and within MAX_CAMERA_DISTANCE of the origin.
    """
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)
    faults = np.zeros(len(c2w), dtype=np.int64)
    finite = np.isfinite(c2w).all(axis=(1, 2))
    faults[~finite] = 1
    safe = np.where(finite[:, None, None], c2w, np.eye(4))  # keep the non-finite out of the arithmetic below
    rotation = safe[:, :3, :3]
    gram = np.matmul(rotation.transpose(0, 2, 1), rotation) - np.eye(3)
    determinant = np.einsum("ni,ni->n", rotation[:, 0], np.cross(rotation[:, 1], rotation[:, 2]))
    rigid = (np.abs(gram).max(axis=(1, 2)) <= RIGID_TOLERANCE) & (determinant > 0)
    rigid &= np.abs(safe[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1) <= RIGID_TOLERANCE
    faults[finite & ~rigid] = 2
    far = np.abs(safe[:, :3, 3]).max(axis=1) > MAX_CAMERA_DISTANCE  # no squares: 1e300 must not overflow
    far |= np.linalg.norm(np.where(far[:, None], 0.0, safe[:, :3, 3]), axis=1) > MAX_CAMERA_DISTANCE
    faults[finite & rigid & far] = 3
    return faults


def times_ok(times: np.ndarray) -> np.ndarray:
    """bool [T]: which normalised animation times are finite and in [0, 1]."""
    times = np.asarray(times, dtype=np.float64)
    return np.isfinite(times) & (times >= 0.0) & (times <= 1.0)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of the range of a float")
    return value


def strict_json(text: str):
    """``json.loads`` that refuses NaN, Infinity and numbers that overflow a float (JSON has no
    non-finite numbers; d4d's writers never write them). ValueError otherwise."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


# ---------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)  # bounded before it is parsed
        if len(raw) > MAX_JSON_BYTES:
            raise RenderContractError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB, too large for a render's {path.name}")
        data = strict_json(raw.decode())
    except FileNotFoundError:
        raise RenderContractError(f"{path}: missing (not a d4d render directory?)") from None
    except RenderContractError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError, NaN, out of range, nested too deep
        raise RenderContractError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise RenderContractError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise RenderContractError(f"{path}: expected a JSON object")
    return data


def read_asset(root: str | Path) -> AssetInfo:
    """asset.json of a render directory, parsed; an empty AssetInfo when there is none."""
    path = Path(root) / ASSET_NAME
    if not path.exists():
        return AssetInfo()
    return AssetInfo.parse(_read_json(path), str(path))


def read_rgba(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """One frame as uint8 [H, W, 4]; RGB images get an opaque alpha. ``size`` (height, width):
    the size the frame must have, checked on the file's header before its pixels are decoded."""
    try:
        with Image.open(path) as image:
            if size is not None and (image.height, image.width) != tuple(size):
                raise RenderContractError(f"{path}: frame is {image.width}x{image.height}, transforms.json says {size[1]}x{size[0]}")
            return np.asarray(image.convert("RGBA"))
    except RenderContractError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderContractError(f"{path}: cannot read frame ({exc})") from None


def contained_file(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` after checking that it names a file inside ``root`` (no absolute
    path, no ``..``, no NUL, and no symbolic link that leads out of ``root``)."""
    if not isinstance(relative, str) or not relative or "\0" in relative or "\\" in relative:
        raise RenderContractError(f"{where}: bad file path {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise RenderContractError(f"{where}: file path {relative!r} leaves the render directory")
    path = root / pure
    if not path.resolve().is_relative_to(root.resolve()):
        raise RenderContractError(f"{where}: {relative!r} is a link out of the render directory")
    return path


def _number(frame: dict, key: str, where: str) -> float:
    value = frame.get(key)
    if not _accepts(float, value) or not math.isfinite(value):
        raise RenderContractError(f"{where}.{key}: expected a finite number, got {value!r:.40}")
    return float(value)


def _camera_header(transforms: dict, where: str) -> tuple[int, int, float]:
    width, height, angle = transforms.get("w"), transforms.get("h"), transforms.get("camera_angle_x")
    if not all(_accepts(int, v) and 0 < v <= MAX_IMAGE_SIDE for v in (width, height)):
        raise RenderContractError(f"{where}: w and h must be integers in 1..{MAX_IMAGE_SIDE}, got {width!r:.40}, {height!r:.40}")
    if not field_of_view_ok(angle):
        low, high = FOV_RANGE_DEG
        raise RenderContractError(f"{where}: camera_angle_x must be in [{low:g}, {high:g}] degrees "
                                  f"({math.radians(low):.4f}..{math.radians(high):.4f} radians), got {angle!r:.40}")
    return width, height, float(angle)


def load_render(root: str | Path, videos: tuple[str, ...] = VIDEO_NAMES, load_pixels: bool = True) -> RenderSample:
    """Read a render directory (written by d4d-render, d4d-sample or ``write_render``).

    Args:
        root: the directory.
        videos: which videos to load; absent ones are skipped.
        load_pixels: False leaves every ``rgba`` as an empty [T, 0, 0, 4] array (cameras only).

    Raises RenderContractError naming the file for anything that breaks the contract.
    """
    root = Path(root)
    where = str(root / TRANSFORMS_NAME)
    transforms = _read_json(root / TRANSFORMS_NAME)
    width, height, angle = _camera_header(transforms, where)
    frames = transforms.get("frames")
    if not isinstance(frames, list):
        raise RenderContractError(f"{where}: frames must be a list")
    by_video: dict[str, list[dict]] = {}
    for number, frame in enumerate(frames):
        if not isinstance(frame, dict) or frame.get("video") not in VIDEO_NAMES:
            raise RenderContractError(f"{where}: frames[{number}] has no known video (one of {VIDEO_NAMES})")
        if frame["video"] in videos:
            by_video.setdefault(frame["video"], []).append(frame)
    sample = RenderSample(root=root, width=width, height=height, camera_angle_x=angle, asset=read_asset(root))
    for name, entries in by_video.items():
        if not all(_accepts(int, f.get("index", 0)) for f in entries):
            raise RenderContractError(f"{where}: {name} frame index must be an integer")
        entries = sorted(entries, key=lambda f: f.get("index", 0))
        spot = [f"{where}: {name} frame {i}" for i in range(len(entries))]
        files = [f.get("file_path") for f in entries]
        paths = [contained_file(root, p, s) for p, s in zip(files, spot)]
        c2w = np.array([f.get("transform_matrix") for f in entries], dtype=object)
        try:
            c2w = np.asarray(c2w.tolist(), dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            c2w = np.empty(0)
        if c2w.shape != (len(entries), 4, 4):
            raise RenderContractError(f"{where}: {name} transform_matrix must be 4x4 matrices of numbers")
        faults = camera_faults(c2w)
        if faults.any():
            first = int(np.flatnonzero(faults)[0])
            raise RenderContractError(f"{spot[first]}: transform_matrix {CAMERA_FAULTS[faults[first]]}")
        times = np.array([_number(f, "time", s) for f, s in zip(entries, spot)])
        if not times_ok(times).all():
            first = int(np.flatnonzero(~times_ok(times))[0])
            raise RenderContractError(f"{spot[first]}.time: {times[first]!r} is not in [0, 1]")
        if load_pixels:
            if len(entries) * height * width * 4 > MAX_DECODED_BYTES:
                raise RenderContractError(f"{where}: {name}: {len(entries)} frames of {width}x{height} exceed the decode budget "
                                          f"of {MAX_DECODED_BYTES / 2**30:g} GiB")
            rgba = np.empty((len(entries), height, width, 4), dtype=np.uint8)
            for i, path in enumerate(paths):
                rgba[i] = read_rgba(path, (height, width))
        else:
            rgba = np.zeros((len(entries), 0, 0, 4), dtype=np.uint8)
        sample.videos[name] = VideoFrames(
            name=name,
            rgba=rgba,
            c2w=c2w,
            times=times,
            azimuths_deg=np.array([_number(f, "azimuth_deg", s) for f, s in zip(entries, spot)]),
            elevations_deg=np.array([_number(f, "elevation_deg", s) for f, s in zip(entries, spot)]),
            distances=np.array([_number(f, "distance", s) for f, s in zip(entries, spot)]),
            files=files,
        )
    if not sample.videos:
        raise RenderContractError(f"{where}: no frames of videos {videos}")
    return sample


# ---------------------------------------------------------------- writing


def transforms_json(sample: RenderSample) -> dict:
    """transforms.json of ``sample`` (NeRF-synthetic layout plus each frame's video, time and pose)."""
    K = sample.K
    frames = []
    for video in sample.videos.values():
        for i in range(len(video)):
            frames.append(
                {
                    "file_path": video.files[i],
                    "video": video.name,
                    "index": i,
                    "time": float(video.times[i]),
                    "azimuth_deg": float(video.azimuths_deg[i]),
                    "elevation_deg": float(video.elevations_deg[i]),
                    "distance": float(video.distances[i]),
                    "transform_matrix": np.asarray(video.c2w[i], dtype=np.float64).tolist(),
                }
            )
    return {
        "convention": CONVENTION,
        "camera_angle_x": float(sample.camera_angle_x),
        "w": int(sample.width),
        "h": int(sample.height),
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "frames": frames,
    }


def write_asset(root: str | Path, asset: AssetInfo) -> Path:
    """Write (or replace) asset.json of a render directory, atomically."""
    return write_json_atomic(Path(root) / ASSET_NAME, asset.to_dict())


def _write_png(path: Path, rgba: np.ndarray) -> None:
    replace_with(path, lambda tmp: Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(tmp, format="PNG"))


def write_render(root: str | Path, sample: RenderSample) -> Path:
    """Write ``sample`` as a render directory at ``root`` (created); the inverse of ``load_render``.

    Frames of a video with pixels are written as RGBA PNGs; a video without pixels (``rgba``
    of shape [T, 0, 0, 4]) must already have its frame files in ``root`` (the renderer writes
    them itself). Then transforms.json and asset.json. Every file is written atomically.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for video in sample.videos.values():
        n = len(video)
        shapes = {"c2w": video.c2w.shape, "times": video.times.shape, "azimuths_deg": video.azimuths_deg.shape,
                  "elevations_deg": video.elevations_deg.shape, "distances": video.distances.shape}
        if shapes["c2w"] != (n, 4, 4) or any(s != (n,) for k, s in shapes.items() if k != "c2w"):
            raise ValueError(f"video {video.name}: {n} files but shapes {shapes}")
        for i, relative in enumerate(video.files):
            path = contained_file(root, relative, f"{root}: {video.name} frame {i}")
            if video.has_pixels:
                if video.rgba.shape != (n, sample.height, sample.width, 4) or video.rgba.dtype != np.uint8:
                    raise ValueError(f"video {video.name}: rgba must be uint8 [{n}, {sample.height}, {sample.width}, 4], got {video.rgba.dtype} {video.rgba.shape}")
                _write_png(path, video.rgba[i])
            elif not path.is_file():
                raise ValueError(f"video {video.name} has no pixels and {path} does not exist")
    write_json_atomic(root / TRANSFORMS_NAME, transforms_json(sample))
    write_asset(root, sample.asset)
    return root
