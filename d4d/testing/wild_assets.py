"""Animated assets shaped like the ones found in the wild, generated with real Blender exporters.

    python -m d4d.testing.wild_assets OUT_DIR [NAME ...]

- ``character.glb``: a skinned humanoid with five glTF animations, as Mixamo / game exports
  ship them: ``Idle`` (a slight sway), ``Walk``, ``Wave``, ``Jump`` and ``TPose`` (keys, but no
  motion);
- ``soldier.fbx``: the same character as FBX, every action a take (``Armature|Walk``...);
- ``tpose_only.glb``: the character with nothing but its T-pose;
- ``dance_20s.glb``: a 20 s animation (480 frames at 24 fps): almost still for 6 s, a burst of
  motion around 9-12 s, moderate motion from 14 s;
- ``heavy.glb``: an animated high-poly mesh (81,920 triangles, shape keys) with two
  2048 x 2048 textures;
- ``broken_texture/character.dae``: the character as Collada with a JPEG texture whose bytes
  are corrupt (Blender renders it magenta unless caught);
- ``outside_link/box.gltf``: a glTF whose texture URI climbs out of its folder.

Used by the tests and benchmarks; ``ensure_wild_assets(DIR)`` builds what is missing in a subprocess.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

WILD_ASSETS = {
    "character": "character.glb",
    "soldier": "soldier.fbx",
    "tpose_only": "tpose_only.glb",
    "dance_20s": "dance_20s.glb",
    "heavy": "heavy.glb",
    "broken_texture": "broken_texture/character.dae",
    "outside_link": "outside_link/box.gltf",
}
#: The character's animations and whether each moves.
CHARACTER_ACTIONS = {"Idle": True, "Jump": True, "TPose": False, "Walk": True, "Wave": True}
FPS = 24

#: Bone name -> (head, tail) of the character's armature, metres, +Z up, facing -Y.
BONES = {
    "hips": ((0, 0, 0.9), (0, 0, 1.1)),
    "spine": ((0, 0, 1.1), (0, 0, 1.5)),
    "arm_l": ((0.18, 0, 1.45), (0.7, 0, 1.45)),
    "arm_r": ((-0.18, 0, 1.45), (-0.7, 0, 1.45)),
    "leg_l": ((0.1, 0, 0.9), (0.1, 0, 0.05)),
    "leg_r": ((-0.1, 0, 0.9), (-0.1, 0, 0.05)),
}
PARENTS = {"spine": "hips", "arm_l": "spine", "arm_r": "spine", "leg_l": "hips", "leg_r": "hips"}


def _material(bpy, name: str, rgb, image=None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    if image is not None:
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = image
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _limb(bpy, name: str, head, tail, radius: float, material):
    """A cylinder from ``head`` to ``tail``, subdivided along its length so skinning bends it."""
    hx, hy, hz = head
    tx, ty, tz = tail
    length = math.dist(head, tail)
    bpy.ops.mesh.primitive_cylinder_add(vertices=12, radius=radius, depth=length, location=((hx + tx) / 2, (hy + ty) / 2, (hz + tz) / 2))
    obj = bpy.context.active_object
    obj.name = name
    direction = (tx - hx, ty - hy, tz - hz)
    obj.rotation_euler = (0.0, math.atan2(math.hypot(direction[0], direction[1]), direction[2]), math.atan2(direction[1], direction[0]))
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=6)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.data.materials.append(material)
    return obj


def build_character(bpy, texture=None):
    """A skinned humanoid (one mesh, six bones) with the animations of CHARACTER_ACTIONS in NLA tracks."""
    skin = _material(bpy, "skin", (0.85, 0.6, 0.45), texture)
    cloth = _material(bpy, "cloth", (0.2, 0.35, 0.8))
    parts = [_limb(bpy, name, head, tail, 0.14 if name in ("hips", "spine") else 0.07, cloth if name.startswith(("hips", "spine", "leg")) else skin)
             for name, (head, tail) in BONES.items()]
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.14, location=(0, 0, 1.66))
    parts.append(bpy.context.active_object)
    parts[-1].data.materials.append(skin)
    bpy.ops.object.select_all(action="DESELECT")
    for part in parts:
        part.select_set(True)
    bpy.context.view_layer.objects.active = parts[0]
    bpy.ops.object.join()
    body = bpy.context.active_object
    body.name = "body"
    bpy.ops.object.armature_add(location=(0, 0, 0))
    rig = bpy.context.active_object
    rig.name = "Armature"
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.armature.select_all(action="SELECT")
    bpy.ops.armature.delete()
    for name, (head, tail) in BONES.items():
        bone = rig.data.edit_bones.new(name)
        bone.head, bone.tail = head, tail
    for child, parent in PARENTS.items():
        rig.data.edit_bones[child].parent = rig.data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    body.select_set(True)
    rig.select_set(True)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.parent_set(type="ARMATURE_AUTO")
    for bone in rig.pose.bones:
        bone.rotation_mode = "XYZ"
    rig.animation_data_create()
    poses = {
        "TPose": [(1, {}), (30, {})],
        "Idle": [(1, {"spine": (0.03, 0, 0)}), (24, {"spine": (-0.03, 0, 0.02)}), (48, {"spine": (0.03, 0, 0)})],
        "Walk": [(1, {"leg_l": (0.6, 0, 0), "leg_r": (-0.6, 0, 0), "arm_l": (0, 0, 0.5), "arm_r": (0, 0, 0.5)}),
                 (16, {"leg_l": (-0.6, 0, 0), "leg_r": (0.6, 0, 0), "arm_l": (0, 0, -0.5), "arm_r": (0, 0, -0.5)}),
                 (32, {"leg_l": (0.6, 0, 0), "leg_r": (-0.6, 0, 0), "arm_l": (0, 0, 0.5), "arm_r": (0, 0, 0.5)})],
        "Wave": [(1, {"arm_r": (0, 1.2, 0)}), (10, {"arm_r": (0, 1.2, 0.6)}), (20, {"arm_r": (0, 1.2, -0.6)}), (30, {"arm_r": (0, 1.2, 0.6)}), (40, {"arm_r": (0, 1.2, 0)})],
        "Jump": [(1, {"hips": (0, 0, 0)}), (8, {"leg_l": (0.8, 0, 0), "leg_r": (0.8, 0, 0)}), (16, {"leg_l": (0, 0, 0), "leg_r": (0, 0, 0)}), (24, {})],
    }
    lifts = {"Jump": [(1, 0.0), (12, 0.5), (24, 0.0)]}
    for name, keys in poses.items():
        action = bpy.data.actions.new(name)
        rig.animation_data.action = action
        for frame, rotations in keys:
            for bone in rig.pose.bones:
                bone.rotation_euler = rotations.get(bone.name, (0.0, 0.0, 0.0))
                bone.keyframe_insert("rotation_euler", frame=frame)
        # Every action keys the hips' location, as exporters that bake all bones do (the hips bone
        # points up: its local Y is world Z).
        for frame, z in lifts.get(name, [(keys[0][0], 0.0), (keys[-1][0], 0.0)]):
            rig.pose.bones["hips"].location = (0, z, 0)
            rig.pose.bones["hips"].keyframe_insert("location", frame=frame)
        rig.animation_data.action = None
        track = rig.animation_data.nla_tracks.new()
        track.name = name
        track.strips.new(name, 1, action)
    for bone in rig.pose.bones:
        bone.rotation_euler, bone.location = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    bpy.context.scene.render.fps = FPS
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 48
    return rig


def _export_gltf(bpy, path: Path, separate: bool = False) -> None:
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLTF_SEPARATE" if separate else "GLB", export_animation_mode="ACTIONS")


def _keep_only(bpy, rig, name: str) -> None:
    """Remove every animation but ``name`` (its NLA track and its action)."""
    for track in list(rig.animation_data.nla_tracks):
        if track.name != name:
            rig.animation_data.nla_tracks.remove(track)
    for action in list(bpy.data.actions):
        if action.name != name:
            bpy.data.actions.remove(action)


def _dance(bpy) -> None:
    """A 20 s animation whose motion varies: still, a burst, moderate."""
    bpy.ops.mesh.primitive_cone_add(radius1=0.4, depth=1.2)
    dancer = bpy.context.active_object
    dancer.data.materials.append(_material(bpy, "dancer", (0.9, 0.3, 0.3)))
    dancer.rotation_mode = "XYZ"
    for second in range(0, 21):
        frame = 1 + second * FPS
        if second < 6:
            angle, height = 0.002 * (second % 2), 0.0  # almost still
        elif 9 <= second <= 12:
            angle, height = (math.pi / 2) * (second - 8), 0.4 * (second % 2)  # a burst
        elif second >= 14:
            angle, height = 0.6 * (second % 2), 0.1 * (second % 2)
        else:
            angle, height = 0.0, 0.0
        dancer.rotation_euler = (0.0, 0.0, angle)
        dancer.location = (0.0, 0.0, height)
        dancer.keyframe_insert("rotation_euler", frame=frame)
        dancer.keyframe_insert("location", frame=frame)
    bpy.context.scene.render.fps = FPS
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 1 + 20 * FPS


def _noise_texture(bpy, name: str, size: int, seed: int):
    """A ``size``-pixel square JPEG of coloured noise, packed into the .blend (and so embedded in a .glb)."""
    import numpy as np

    image = bpy.data.images.new(name, size, size)
    pixels = np.random.default_rng(seed).random((size * size * 4,), dtype=np.float32)
    pixels[3::4] = 1.0
    image.pixels.foreach_set(pixels)
    image.file_format = "JPEG"
    image.pack()
    return image


def _heavy(bpy) -> None:
    """81,920 triangles (an order-7 icosphere) that swell with a shape key, with two 2048 x 2048 textures: what makes
    a real asset slow to import, evaluate and render."""
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=7, radius=0.6)
    ball = bpy.context.active_object
    bpy.ops.object.editmode_toggle()
    bpy.ops.uv.sphere_project()
    bpy.ops.object.editmode_toggle()
    material = _material(bpy, "heavy", (0.3, 0.8, 0.4), _noise_texture(bpy, "heavy_albedo", 2048, 0))
    rough = material.node_tree.nodes.new("ShaderNodeTexImage")
    rough.image = _noise_texture(bpy, "heavy_roughness", 2048, 1)
    material.node_tree.links.new(rough.outputs["Color"], material.node_tree.nodes["Principled BSDF"].inputs["Roughness"])
    ball.data.materials.append(material)
    ball.shape_key_add(name="Basis")
    swell = ball.shape_key_add(name="swell")
    for vertex, basis in zip(swell.data, ball.data.vertices):
        x, y, z = basis.co
        vertex.co = (x * 1.4, y * 1.4, z * 0.6)
    for frame, value in ((1, 0.0), (24, 1.0), (48, 0.0)):
        swell.value = value
        swell.keyframe_insert("value", frame=frame)
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 48


def _corrupt_jpeg(path: Path) -> None:
    """A file that starts like a JPEG and then is not one."""
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)


def build(name: str, out: Path) -> Path:
    """Build one wild asset under ``out``; returns its path. Needs bpy."""
    import bpy

    path = out / WILD_ASSETS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if name == "character":
        build_character(bpy)
        _export_gltf(bpy, path)
    elif name == "soldier":
        build_character(bpy)
        bpy.ops.export_scene.fbx(filepath=str(path), bake_anim=True, bake_anim_use_all_actions=True, bake_anim_use_nla_strips=False)
    elif name == "tpose_only":
        rig = build_character(bpy)
        _keep_only(bpy, rig, "TPose")
        _export_gltf(bpy, path)
    elif name == "dance_20s":
        _dance(bpy)
        _export_gltf(bpy, path)
    elif name == "heavy":
        _heavy(bpy)
        _export_gltf(bpy, path)
    elif name == "broken_texture":
        good = path.parent / "skin.jpg"
        image = bpy.data.images.new("skin", 16, 16)
        image.filepath_raw, image.file_format = str(good), "JPEG"
        image.save()
        build_character(bpy, texture=image)
        bpy.ops.wm.collada_export(filepath=str(path), include_animations=True)
        _corrupt_jpeg(good)
    elif name == "outside_link":
        bpy.ops.mesh.primitive_cube_add()
        outside = path.parent.parent / "outside_texture.png"
        image = bpy.data.images.new("outside", 8, 8)
        image.filepath_raw, image.file_format = str(outside), "PNG"
        image.save()
        bpy.context.active_object.data.materials.append(_material(bpy, "box", (0.5, 0.5, 0.5), image))
        bpy.ops.object.location_clear()
        bpy.context.active_object.keyframe_insert("location", frame=1)
        bpy.context.active_object.location = (0.5, 0, 0)
        bpy.context.active_object.keyframe_insert("location", frame=24)
        _export_gltf(bpy, path, separate=True)
        _point_image_at(path, "../outside_texture.png")
    return path


def _point_image_at(gltf: Path, uri: str) -> None:
    """Make every image of a .gltf reference ``uri`` (the exporter copies textures next to it)."""
    import json

    data = json.loads(gltf.read_text())
    for image in data.get("images", []):
        image["uri"] = uri
    gltf.write_text(json.dumps(data))


def ensure_wild_assets(directory: str | Path, names: tuple[str, ...] = tuple(WILD_ASSETS), timeout_s: float = 600.0) -> dict[str, Path]:
    """name -> path of each wild asset under ``directory``; missing ones are built in a subprocess."""
    directory = Path(directory)
    paths = {name: directory / WILD_ASSETS[name] for name in names}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "d4d.testing.wild_assets", str(directory), *missing], check=True, timeout=timeout_s,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return paths


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    for name in argv[1:] or list(WILD_ASSETS):
        print(build(name, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
