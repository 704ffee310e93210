"""A procedural, seeded dataset of animated assets that d4d generates itself with Blender.

Each asset is one primitive shape (``SHAPES``) in two tones (faces on the +X side one colour,
the rest another, so views differ), animated by one motion (``MOTIONS``) at an amplitude drawn
from that motion's range, so the motion magnitudes of the clips spread. Assets are written as
binary glTF (.glb), the format real data comes in, with a caption each in Cap3D's format
(``captions.csv``: what the object looks like, not how it moves, as Cap3D's captions do).

``procedural_specs(count, seed)`` draws the specs (pure Python, no bpy): motions in turn, so
every motion appears, shapes and colour pairs shuffled. ``split_specs`` holds out the last
assets (consecutive, so they span the motions, each with its own shape and colour draw).
``python -m d4d.rendering.procedural_assets --out DIR --count N --heldout K --seed S`` writes ``DIR/train/`` and ``DIR/heldout/`` (each a local source for
``d4d-curate``, with its ``captions.csv``) and ``DIR/specs.json``; ``ensure_procedural_assets``
does so in a subprocess (bpy stays out of the caller), only when the specs differ.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from d4d.files import sha256_file, write_bytes_atomic, write_json_atomic

#: Primitive shapes (builders in _add_shape).
SHAPES = ("cube", "sphere", "cylinder", "cone", "torus", "slab")
#: Named colours (linear RGB) the two tones are drawn from.
COLOURS = {
    "red": (0.85, 0.1, 0.08), "blue": (0.08, 0.25, 0.9), "green": (0.12, 0.7, 0.2), "yellow": (0.95, 0.8, 0.05),
    "purple": (0.55, 0.12, 0.75), "orange": (0.95, 0.4, 0.05), "cyan": (0.05, 0.75, 0.8), "black": (0.04, 0.04, 0.04),
}
#: Motions and the range their amplitude is drawn from (radians for rotations, scene units for
#: translations, scale factor offsets for pulses and squashes).
MOTIONS = {
    "spin": (0.4, 3.0),        # turn about the vertical axis by up to the amplitude, and back
    "tumble": (0.3, 1.6),      # rock about a horizontal axis
    "bounce": (0.1, 0.6),      # rise and fall
    "slide": (0.1, 0.6),       # move side to side
    "pulse": (0.1, 0.6),       # grow and shrink uniformly
    "squash": (0.1, 0.6),      # flatten and stretch
}
#: Timeline length of every procedural animation (frames at 24 fps): one back-and-forth cycle.
ANIMATION_FRAMES = 48
#: What a procedural dataset folder holds.
SPECS_FILE = "specs.json"
CAPTIONS_FILE = "captions.csv"
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class AssetSpec:
    """One procedural asset.

    Attributes:
        name: file stem (``p000_spin_cube``).
        shape: one of SHAPES.
        colours: (colour of the +X side, colour of the rest), names in COLOURS.
        motion: one of MOTIONS.
        amplitude: the motion's amplitude (units in MOTIONS).
        split: "train" or "heldout".
    """

    name: str
    shape: str
    colours: tuple[str, str]
    motion: str
    amplitude: float
    split: str = "train"

    @property
    def caption(self) -> str:
        noun = {"slab": "flat slab", "torus": "ring"}.get(self.shape, self.shape)
        return f"a {noun}, {self.colours[0]} on one side and {self.colours[1]} on the other"


def procedural_specs(count: int, seed: int = 0) -> list[AssetSpec]:
    """``count`` asset specs drawn from ``seed``: motion i % len(MOTIONS), a shuffled shape per
    asset, two different colours, an amplitude uniform in the motion's range. All "train"."""
    if count < 1:
        raise ValueError(f"count: got {count}, expected >= 1")
    rng = random.Random(seed)
    colour_names = sorted(COLOURS)
    specs = []
    for i in range(count):
        motion = sorted(MOTIONS)[i % len(MOTIONS)]
        shape = rng.choice(SHAPES)
        first, second = rng.sample(colour_names, 2)
        low, high = MOTIONS[motion]
        amplitude = round(rng.uniform(low, high), 3)
        specs.append(AssetSpec(f"p{i:03d}_{motion}_{shape}", shape, (first, second), motion, amplitude))
    return specs


def split_specs(specs: list[AssetSpec], heldout: int) -> list[AssetSpec]:
    """The specs with the last ``heldout`` of them marked "heldout": motions come in turn, so
    up to len(MOTIONS) held-out assets all move differently, each in a shape and colour pair of
    its own draw; at least one asset stays for training."""
    if not 0 <= heldout < len(specs):
        raise ValueError(f"heldout: got {heldout}, expected 0..{len(specs) - 1} for {len(specs)} assets")
    first = len(specs) - heldout
    return [AssetSpec(s.name, s.shape, s.colours, s.motion, s.amplitude, "heldout" if i >= first else "train")
            for i, s in enumerate(specs)]


# ---- Blender side (bpy, in the subprocess) ----

def _add_shape(bpy, shape: str):
    ops = bpy.ops.mesh
    if shape == "cube":
        ops.primitive_cube_add(size=0.9)
    elif shape == "sphere":
        ops.primitive_uv_sphere_add(segments=24, ring_count=12, radius=0.5)
    elif shape == "cylinder":
        ops.primitive_cylinder_add(vertices=24, radius=0.35, depth=1.0)
    elif shape == "cone":
        ops.primitive_cone_add(vertices=24, radius1=0.5, depth=1.0)
    elif shape == "torus":
        ops.primitive_torus_add(major_radius=0.45, minor_radius=0.15, major_segments=32, minor_segments=12)
    elif shape == "slab":
        ops.primitive_cube_add(size=1.0)
        bpy.context.active_object.scale = (1.0, 0.6, 0.25)
    else:
        raise ValueError(f"shape: unknown {shape!r}; valid: {SHAPES}")
    obj = bpy.context.active_object
    bpy.ops.object.transform_apply(location=False, rotation=False, scale=True)
    return obj


def _two_tone(bpy, obj, name: str, first: tuple, second: tuple) -> None:
    """Faces on the +X side get ``first``, the others ``second`` (so rotation and handedness show)."""
    for index, rgb in enumerate((first, second)):
        mat = bpy.data.materials.new(f"{name}_{index}")
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.6
        mat.diffuse_color = (*rgb, 1.0)
        obj.data.materials.append(mat)
    for poly in obj.data.polygons:
        poly.material_index = 0 if poly.center.x > 1e-6 else 1


def _animate(obj, motion: str, amplitude: float) -> None:
    """Keyframes over 1..ANIMATION_FRAMES: rest, the motion's extreme at the middle, rest again
    (a quarter-cycle pause at each end would waste frames: the extremes are at 1, mid and end)."""
    a = amplitude
    poses = {
        "spin": ("rotation_euler", (0.0, 0.0, 0.0), (0.0, 0.0, a)),
        "tumble": ("rotation_euler", (0.0, 0.0, 0.0), (a, 0.0, 0.0)),
        "bounce": ("location", (0.0, 0.0, 0.0), (0.0, 0.0, a)),
        "slide": ("location", (-a / 2, 0.0, 0.0), (a / 2, 0.0, 0.0)),
        "pulse": ("scale", (1.0, 1.0, 1.0), (1.0 + a, 1.0 + a, 1.0 + a)),
        "squash": ("scale", (1.0, 1.0, 1.0), (1.0 + a / 2, 1.0 + a / 2, 1.0 / (1.0 + a))),
    }
    if motion not in poses:
        raise ValueError(f"motion: unknown {motion!r}; valid: {sorted(MOTIONS)}")
    path, rest, extreme = poses[motion]
    for frame, value in ((1, rest), (ANIMATION_FRAMES // 2, extreme), (ANIMATION_FRAMES, rest)):
        setattr(obj, path, value)
        obj.keyframe_insert(data_path=path, frame=frame)


def build_procedural(spec: AssetSpec, path: Path) -> None:
    """Build one procedural asset in a fresh scene and export it to ``path`` (.glb). Needs bpy."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = _add_shape(bpy, spec.shape)
    obj.name = spec.name
    _two_tone(bpy, obj, spec.name, COLOURS[spec.colours[0]], COLOURS[spec.colours[1]])
    _animate(obj, spec.motion, spec.amplitude)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, ANIMATION_FRAMES
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB", export_animations=True, export_yup=True)
    os.replace(tmp, path)


# ---- the dataset folder ----

def asset_path(directory: str | Path, spec: AssetSpec) -> Path:
    return Path(directory) / spec.split / f"{spec.name}.glb"


def write_captions(directory: str | Path, specs: list[AssetSpec]) -> dict[str, Path]:
    """``directory/<split>/captions.csv`` per split (Cap3D's format: no header; sha256, caption)
    of the assets that exist; returns split -> path."""
    written = {}
    for split in SPLITS:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for spec in specs:
            path = asset_path(directory, spec)
            if spec.split == split and path.exists():
                writer.writerow([sha256_file(path), spec.caption])
        (Path(directory) / split).mkdir(parents=True, exist_ok=True)
        written[split] = write_bytes_atomic(Path(directory) / split / CAPTIONS_FILE, buffer.getvalue().encode())
    return written


def read_specs(directory: str | Path) -> list[AssetSpec]:
    """The specs a dataset folder was written with (``specs.json``); [] when it has none."""
    path = Path(directory) / SPECS_FILE
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())["assets"]
    return [AssetSpec(r["name"], r["shape"], tuple(r["colours"]), r["motion"], float(r["amplitude"]), r["split"]) for r in rows]


def dataset_specs(count: int, heldout: int, seed: int) -> list[AssetSpec]:
    """The specs of a dataset of ``count`` assets, ``heldout`` of them held out, drawn from ``seed``."""
    return split_specs(procedural_specs(count, seed), heldout)


def write_dataset(directory: str | Path, count: int, heldout: int, seed: int) -> list[AssetSpec]:
    """Build (in this process: needs bpy) every missing asset of the dataset into ``directory``,
    then its captions and specs.json; returns the specs."""
    directory = Path(directory)
    specs = dataset_specs(count, heldout, seed)
    wanted = {asset_path(directory, spec) for spec in specs}
    for split in SPLITS:  # assets of an earlier draw would join this one's curation
        for stale in sorted((directory / split).glob("*.glb")) if (directory / split).is_dir() else []:
            if stale not in wanted:
                stale.unlink()
    for spec in specs:
        path = asset_path(directory, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            build_procedural(spec, path)
    write_captions(directory, specs)
    write_json_atomic(directory / SPECS_FILE, {"count": count, "heldout": heldout, "seed": seed,
                                               "assets": [asdict(s) for s in specs]})
    return specs


def ensure_procedural_assets(directory: str | Path, count: int, heldout: int, seed: int = 0,
                             timeout_s: float = 600.0) -> list[AssetSpec]:
    """The dataset under ``directory``, built in a subprocess when its specs.json is missing or
    differs from (count, heldout, seed)."""
    wanted = dataset_specs(count, heldout, seed)
    if read_specs(directory) != wanted or not all(asset_path(directory, s).exists() for s in wanted):
        Path(directory).mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "d4d.rendering.procedural_assets", "--out", str(directory), "--count", str(count),
                        "--heldout", str(heldout), "--seed", str(seed)], check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
    return read_specs(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m d4d.rendering.procedural_assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="dataset folder (train/, heldout/, specs.json)")
    parser.add_argument("--count", type=int, default=24, help="assets in all (default 24)")
    parser.add_argument("--heldout", type=int, default=6, help="assets held out of training (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seeds shapes, colours and amplitudes (default 0)")
    args = parser.parse_args(argv)
    try:
        specs = write_dataset(args.out, args.count, args.heldout, args.seed)
    except ValueError as exc:
        print(f"procedural_assets: {exc}", file=sys.stderr)
        return 2
    for spec in specs:
        print(f"{spec.split}: {spec.name} ({spec.motion} {spec.amplitude}, {spec.caption})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
