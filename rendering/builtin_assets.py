"""Built-in animated assets that d4d generates itself with Blender, for the demo and the tests.

Each is written as a binary glTF (.glb), the format most Objaverse assets come in, so they
go through the same importer as real data:

- ``rigid``: a coloured box that slides and turns (object transform animation);
- ``skinned``: a two-bone armature bending a segmented column (skinning);
- ``shapekeys``: a sphere that swells and flattens (morph targets / shape keys);
- ``late_start``: a box that holds still for frames 1-120 and only moves over 120-180,
  so a renderer that plays frames 0..23 sees nothing move;
- ``static``: a coloured monkey head with no animation at all.

Each has a caption (``BUILTIN_CAPTIONS``), written beside them as ``captions.csv`` in Cap3D's
format. ``python -m d4d.rendering.builtin_assets --out DIR`` (or ``d4d-make-assets``) writes them;
``ensure_builtin_assets(DIR)`` does so in a subprocess, only for missing files.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import subprocess
import sys
from pathlib import Path

from d4d.files import sha256_file, write_bytes_atomic

BUILTIN_ASSETS = ("rigid", "skinned", "shapekeys", "late_start", "static")
#: Which built-ins a correct pipeline must see as moving.
ANIMATED_BUILTINS = ("rigid", "skinned", "shapekeys", "late_start")
#: A caption per built-in, in Cap3D's manner (what the object looks like, not how it moves).
BUILTIN_CAPTIONS = {
    "rigid": "a flat box, red on one side and blue on the other",
    "skinned": "a tall column, green on one side and yellow on the other",
    "shapekeys": "a round ball, purple on one side and white on the other",
    "late_start": "a small cube, orange on one side and light blue on the other",
    "static": "a monkey head, brown on one side and blue on the other",
}
#: The caption file written beside the built-ins (Cap3D's format: no header; sha256, caption).
CAPTIONS_FILE = "captions.csv"


def _material(bpy, name: str, rgb: tuple[float, float, float]):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.6
    return mat


def _two_tone(bpy, obj, name: str, first: tuple, second: tuple) -> None:
    """Give faces on the +X side one colour and the rest another, so rotation and handedness show."""
    obj.data.materials.append(_material(bpy, f"{name}_a", first))
    obj.data.materials.append(_material(bpy, f"{name}_b", second))
    for poly in obj.data.polygons:
        poly.material_index = 0 if poly.center.x > 1e-6 else 1


def _key(obj, path: str, frame: float, value) -> None:
    setattr(obj, path, value)
    obj.keyframe_insert(data_path=path, frame=frame)


def _build_rigid(bpy) -> None:
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    box = bpy.context.active_object
    box.name = "rigid_box"
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=1)
    bpy.ops.object.mode_set(mode="OBJECT")
    box.scale = (1.0, 0.6, 0.4)
    _two_tone(bpy, box, "rigid", (0.9, 0.25, 0.1), (0.1, 0.4, 0.9))
    _key(box, "location", 1, (-0.6, 0.0, 0.0))
    _key(box, "location", 48, (0.6, 0.0, 0.3))
    _key(box, "rotation_euler", 1, (0.0, 0.0, 0.0))
    _key(box, "rotation_euler", 48, (0.0, 0.0, math.pi))
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 48


def _build_skinned(bpy) -> None:
    bpy.ops.mesh.primitive_cylinder_add(vertices=16, radius=0.25, depth=2.0, location=(0, 0, 1.0))
    column = bpy.context.active_object
    column.name = "skinned_column"
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=12)
    bpy.ops.object.mode_set(mode="OBJECT")
    _two_tone(bpy, column, "skinned", (0.2, 0.8, 0.3), (0.9, 0.8, 0.1))
    bpy.ops.object.armature_add(location=(0, 0, 0))
    rig = bpy.context.active_object
    rig.name = "skinned_rig"
    bpy.ops.object.mode_set(mode="EDIT")
    lower = rig.data.edit_bones[0]
    lower.name, lower.head, lower.tail = "lower", (0, 0, 0), (0, 0, 1.0)
    upper = rig.data.edit_bones.new("upper")
    upper.head, upper.tail, upper.parent = (0, 0, 1.0), (0, 0, 2.0), lower
    bpy.ops.object.mode_set(mode="OBJECT")
    column.select_set(True)
    rig.select_set(True)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.parent_set(type="ARMATURE_AUTO")
    upper_bone = rig.pose.bones["upper"]
    upper_bone.rotation_mode = "XYZ"
    for frame, angle in ((1, 0.0), (24, 1.2), (48, -1.2), (72, 0.0)):
        upper_bone.rotation_euler = (angle, 0.0, 0.0)
        upper_bone.keyframe_insert(data_path="rotation_euler", frame=frame)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 72


def _build_shapekeys(bpy) -> None:
    bpy.ops.mesh.primitive_uv_sphere_add(segments=32, ring_count=16, radius=0.6)
    sphere = bpy.context.active_object
    sphere.name = "shapekeys_sphere"
    _two_tone(bpy, sphere, "shapekeys", (0.7, 0.2, 0.8), (0.95, 0.95, 0.9))
    sphere.shape_key_add(name="Basis")
    squash = sphere.shape_key_add(name="squash")
    for vertex, basis in zip(squash.data, sphere.data.vertices):
        x, y, z = basis.co
        vertex.co = (x * 1.6, y * 1.6, z * 0.35)
    for frame, value in ((1, 0.0), (20, 1.0), (40, 0.0)):
        squash.value = value
        squash.keyframe_insert(data_path="value", frame=frame)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 40


def _build_late_start(bpy) -> None:
    bpy.ops.mesh.primitive_cube_add(size=0.8)
    box = bpy.context.active_object
    box.name = "late_box"
    _two_tone(bpy, box, "late", (0.95, 0.55, 0.1), (0.2, 0.7, 0.8))
    _key(box, "location", 1, (0.0, 0.0, 0.0))
    _key(box, "location", 120, (0.0, 0.0, 0.0))
    _key(box, "location", 180, (0.0, 0.0, 1.2))
    _key(box, "rotation_euler", 1, (0.0, 0.0, 0.0))
    _key(box, "rotation_euler", 120, (0.0, 0.0, 0.0))
    _key(box, "rotation_euler", 180, (0.0, 0.0, math.pi / 2))
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 180


def _build_static(bpy) -> None:
    bpy.ops.mesh.primitive_monkey_add(size=1.0)
    head = bpy.context.active_object
    head.name = "static_monkey"
    _two_tone(bpy, head, "static", (0.8, 0.5, 0.3), (0.3, 0.5, 0.8))


BUILDERS = {
    "rigid": _build_rigid,
    "skinned": _build_skinned,
    "shapekeys": _build_shapekeys,
    "late_start": _build_late_start,
    "static": _build_static,
}


def build_asset(name: str, path: Path) -> None:
    """Build one built-in asset in a fresh scene and export it to ``path`` (.glb). Needs bpy."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    BUILDERS[name](bpy)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    bpy.ops.export_scene.gltf(filepath=str(tmp), export_format="GLB", export_animations=True, export_yup=True)
    os.replace(tmp, path)


def asset_paths(directory: str | Path) -> dict[str, Path]:
    directory = Path(directory)
    return {name: directory / f"{name}.glb" for name in BUILTIN_ASSETS}


def write_captions(directory: str | Path) -> Path:
    """Write ``directory/captions.csv``: each built-in's sha256 and caption (BUILTIN_CAPTIONS) in
    Cap3D's format, so ``d4d-curate --captions`` puts them in the shards; returns its path."""
    directory = Path(directory)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for name, path in asset_paths(directory).items():
        if path.exists():
            writer.writerow([sha256_file(path), BUILTIN_CAPTIONS[name]])
    return write_bytes_atomic(directory / CAPTIONS_FILE, buffer.getvalue().encode())


def ensure_builtin_assets(directory: str | Path, timeout_s: float = 300.0) -> dict[str, Path]:
    """Make sure every built-in asset exists under ``directory``, with its caption file; build
    missing ones in a subprocess."""
    paths = asset_paths(directory)
    if not all(p.exists() for p in paths.values()):
        Path(directory).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "d4d.rendering.builtin_assets", "--out", str(directory)],
            check=True,
            timeout=timeout_s,
            stdout=subprocess.DEVNULL,
        )
    if not (Path(directory) / CAPTIONS_FILE).exists():
        write_captions(directory)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="d4d-make-assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write the .glb files to")
    parser.add_argument("--only", nargs="*", choices=BUILTIN_ASSETS, help="build only these")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or BUILTIN_ASSETS:
        path = asset_paths(args.out)[name]
        if not path.exists():
            build_asset(name, path)
        print(f"{name}: {path}", file=sys.stderr)
    print(f"captions: {write_captions(args.out)} (d4d-curate --captions)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
