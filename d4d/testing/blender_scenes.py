"""Test inputs made with real Blender exporters; run as a script in its own process.

    python -m d4d.testing.blender_scenes SOURCE.glb OUT_DIR

writes OUT_DIR/rigid.<ext> for every format d4d imports (exported from the animated SOURCE),
plus special cases: a glTF with two animations, a glTF whose .bin is gone, an OBJ whose texture is gone, a scene with no
geometry, a .blend that tries to auto-run a script on load, and a .blend too heavy to render
within a short timeout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

ANIMATED_FORMATS = ("glb", "gltf", "fbx", "dae", "abc", "usd", "usda", "usdc", "usdz", "blend")
STATIC_FORMATS = ("obj", "stl", "ply")
AUTORUN_MARKER_ENV = "D4D_AUTORUN_MARKER"


def load(source: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(source))


def export(fmt: str, path: Path) -> None:
    if fmt == "glb":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB")
    elif fmt == "gltf":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLTF_SEPARATE")
    elif fmt == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), bake_anim=True)
    elif fmt == "dae":
        bpy.ops.wm.collada_export(filepath=str(path), include_animations=True)
    elif fmt == "abc":
        bpy.ops.wm.alembic_export(filepath=str(path), start=1, end=48)
    elif fmt in ("usd", "usda", "usdc", "usdz"):
        bpy.ops.wm.usd_export(filepath=str(path), export_animation=True)
    elif fmt == "blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    elif fmt == "obj":
        bpy.ops.wm.obj_export(filepath=str(path), export_materials=True)
    elif fmt == "stl":
        bpy.ops.wm.stl_export(filepath=str(path))
    elif fmt == "ply":
        bpy.ops.wm.ply_export(filepath=str(path))


def main(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for fmt in ANIMATED_FORMATS + STATIC_FORMATS:
        load(source)
        export(fmt, out / f"rigid.{fmt}")

    # Two animations in one glTF: "slide" (played on import) and "spin" (stashed in the NLA).
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=1)
    cube = bpy.context.active_object
    for name, path, values, end in (("slide", "location", ((0, 0, 0), (1, 0, 0)), 30), ("spin", "rotation_euler", ((0, 0, 0), (0, 0, 3.14159)), 60)):
        for frame, value in zip((1, end), values):
            setattr(cube, path, value)
            cube.keyframe_insert(path, frame=frame)
        action = cube.animation_data.action
        action.name = name
        cube.animation_data.nla_tracks.new().strips.new(name, 1, action)
        cube.animation_data.action = None
        cube.location, cube.rotation_euler = (0, 0, 0), (0, 0, 0)
    bpy.ops.export_scene.gltf(filepath=str(out / "two_actions.glb"), export_format="GLB", export_animation_mode="ACTIONS")

    # glTF with its buffer file deleted.
    load(source)
    broken = out / "broken"
    broken.mkdir(exist_ok=True)
    export("gltf", broken / "missing_bin.gltf")
    (broken / "missing_bin.bin").unlink()

    # OBJ whose material points at a texture that is not there.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    image = bpy.data.images.new("gone", 8, 8)
    image.filepath_raw = str(broken / "gone.png")
    image.file_format = "PNG"
    image.save()
    mat = bpy.data.materials.new("textured")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    mat.node_tree.links.new(tex.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
    bpy.context.active_object.data.materials.append(mat)
    bpy.ops.wm.obj_export(filepath=str(broken / "missing_texture.obj"), export_materials=True)
    (broken / "gone.png").unlink()

    # A scene with nothing to render: one empty.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("just_an_empty", None))
    bpy.ops.export_scene.gltf(filepath=str(broken / "no_geometry.glb"), export_format="GLB")

    # A .blend that would write a marker file if its registered script ran on load.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    text = bpy.data.texts.new("autorun.py")
    text.use_module = True
    text.write(f"import os, pathlib\npathlib.Path(os.environ['{AUTORUN_MARKER_ENV}']).write_text('ran')\n")
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "autorun.blend"), copy=True)

    # A .blend too heavy to evaluate quickly: 6 million faces from a subdivided cube.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add()
    modifier = bpy.context.active_object.modifiers.new("subdivide", "SUBSURF")
    modifier.levels = modifier.render_levels = 10
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "heavy.blend"), copy=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
