"""Prepare an imported scene for rendering: clean-up, counts, normalisation, lights, camera, engine. Needs bpy."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from d4d.rendering.blender.geometry import renderable_objects
from d4d.rendering.errors import AssetError
from d4d.rendering.options import RenderOptions

#: Directions (azimuth, elevation in degrees) the four sun lights shine from, as in the released
#: script's four suns; their energies are drawn from LIGHT_ENERGY_RANGE with the render seed.
LIGHT_DIRECTIONS = ((45.0, 45.0), (135.0, 30.0), (225.0, 45.0), (315.0, 30.0))
LIGHT_ENERGY_RANGE = (2.0, 4.0)


def reset(bpy) -> None:
    """An empty scene with factory settings; Python auto-execution stays off."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False


def remove_cameras_and_lights(bpy) -> None:
    for obj in list(bpy.data.objects):
        if obj.type in {"CAMERA", "LIGHT", "LIGHT_PROBE", "SPEAKER"}:
            bpy.data.objects.remove(obj, do_unlink=True)


def scene_counts(bpy) -> dict:
    objects = list(bpy.context.scene.objects)
    meshes = [o for o in renderable_objects(bpy) if o.type == "MESH"]
    return {
        "objects": len(objects),
        "meshes": len(meshes),
        "armatures": sum(o.type == "ARMATURE" for o in objects),
        "shape_keys": sum(len(o.data.shape_keys.key_blocks) - 1 for o in meshes if o.data.shape_keys),
        "actions": len(bpy.data.actions),
        "materials": len(bpy.data.materials),
        "images": len(bpy.data.images),
    }


def missing_linked_files(bpy) -> list[str]:
    """Image files the scene references that are neither packed nor on disk."""
    missing = []
    for image in bpy.data.images:
        if image.source != "FILE" or image.packed_file is not None or not image.filepath:
            continue
        path = bpy.path.abspath(image.filepath)
        if not os.path.exists(path):
            missing.append(Path(path).name)
    return sorted(set(missing))


def normalization(bbox_min: np.ndarray, bbox_max: np.ndarray) -> dict:
    """Scale and offset that centre the box at the origin with its largest side 1: x' = scale * x + offset."""
    extent = float(np.max(bbox_max - bbox_min))
    scale = 1.0 / extent if extent > 0 else 1.0
    center = (bbox_min + bbox_max) / 2.0
    return {
        "scale": scale,
        "offset": [float(v) for v in -center * scale],
        "bbox_min": [float(v) for v in bbox_min],
        "bbox_max": [float(v) for v in bbox_max],
        "computed_over": "all sampled frames",
    }


NORMALIZATION_ROOT = "d4d_normalize"


def normalization_root(bpy):
    """The empty every root object is parented to (created at identity on first use); its
    transform is the normalisation, so setting it back to identity shows the raw scene."""
    root = bpy.data.objects.get(NORMALIZATION_ROOT)
    if root is None:
        root = bpy.data.objects.new(NORMALIZATION_ROOT, None)
        bpy.context.scene.collection.objects.link(root)
        for obj in list(bpy.context.scene.objects):
            if obj.parent is None and obj is not root:
                world = obj.matrix_world.copy()
                obj.parent = root
                obj.matrix_world = world
    return root


def set_normalization(bpy, norm: dict | None) -> None:
    """Apply ``norm`` (scale, offset) to the normalisation root; None shows the raw scene."""
    root = normalization_root(bpy)
    root.scale = (norm["scale"],) * 3 if norm else (1.0, 1.0, 1.0)
    root.location = norm["offset"] if norm else (0.0, 0.0, 0.0)
    bpy.context.view_layer.update()


def unreadable_images(bpy) -> list[str]:
    """Images on disk or packed that Blender cannot decode (reading their size loads them)."""
    bad = []
    for image in bpy.data.images:
        if image.source != "FILE" or not image.filepath and image.packed_file is None:
            continue
        if image.packed_file is None and not os.path.exists(bpy.path.abspath(image.filepath)):
            continue  # missing, not unreadable: missing_linked_files reports it
        if tuple(image.size) == (0, 0):
            bad.append(Path(image.filepath).name or image.name)
    return sorted(set(bad))


def drop_unreadable_textures(bpy, names: list[str]) -> int:
    """Unlink the outputs of image-texture nodes whose image is unreadable, so their inputs fall
    back to the material's plain values instead of Blender's missing-texture magenta. Returns
    the number of nodes unlinked."""
    count = 0
    for material in bpy.data.materials:
        if not material.node_tree:
            continue
        for node in material.node_tree.nodes:
            image = getattr(node, "image", None)
            if node.type == "TEX_IMAGE" and image is not None and (Path(image.filepath).name or image.name) in names:
                for output in node.outputs:
                    for link in list(output.links):
                        material.node_tree.links.remove(link)
                count += 1
    return count


def remove_d4d_objects(bpy) -> None:
    """Remove the lights and camera an earlier render of this session added."""
    for obj in list(bpy.data.objects):
        if obj.name.startswith(("d4d_sun_", "d4d_camera")):
            bpy.data.objects.remove(obj, do_unlink=True)


def add_lights(bpy, seed: int) -> list[dict]:
    """Four sun lights with seeded random energies; returns what was added."""
    rng = np.random.default_rng(seed)
    lights = []
    for i, (azimuth, elevation) in enumerate(LIGHT_DIRECTIONS):
        energy = float(rng.uniform(*LIGHT_ENERGY_RANGE))
        data = bpy.data.lights.new(f"d4d_sun_{i}", type="SUN")
        data.energy = energy
        obj = bpy.data.objects.new(f"d4d_sun_{i}", data)
        bpy.context.scene.collection.objects.link(obj)
        # A sun shines along its local -Z; point it from (azimuth, elevation) towards the origin.
        obj.rotation_euler = (math.radians(90.0 - elevation), 0.0, math.radians(azimuth))
        lights.append({"type": "SUN", "azimuth_deg": azimuth, "elevation_deg": elevation, "energy": energy})
    return lights


def add_camera(bpy, fov_deg: float):
    data = bpy.data.cameras.new("d4d_camera")
    data.sensor_fit = "HORIZONTAL"
    data.angle = math.radians(fov_deg)
    data.clip_start, data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new("d4d_camera", data)
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    return camera


GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")


def _enable_gpu(bpy) -> bool:
    """Switch Cycles to the first GPU backend with a device; raise AssetError when there is none."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in GPU_BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:  # backend not compiled into this Blender
            continue
        prefs.refresh_devices()
        devices = [d for d in prefs.devices if d.type == backend]
        if devices:
            for device in devices:
                device.use = True
            return True
    raise AssetError("render_failed", f"--device gpu: Cycles found no GPU device (tried {', '.join(GPU_BACKENDS)})")


def configure_engine(bpy, options: RenderOptions) -> None:
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x = render.resolution_y = options.resolution
    render.resolution_percentage = 100
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = options.view_transform
    scene.view_settings.look = "None"
    if scene.world is None:
        scene.world = bpy.data.worlds.new("d4d_world")
    if options.engine == "cycles":
        render.engine = "CYCLES"
        cycles = scene.cycles
        cycles.device = "GPU" if options.device == "gpu" and _enable_gpu(bpy) else "CPU"
        cycles.samples = options.samples
        cycles.use_adaptive_sampling = True
        cycles.use_denoising = options.denoise
        cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.denoising_quality = options.denoise_quality.upper()
        cycles.denoising_prefilter = "ACCURATE" if options.denoise_quality == "high" else "FAST"
        cycles.max_bounces = options.max_bounces
        cycles.seed = options.seed
        render.use_persistent_data = True
    elif options.engine == "workbench":
        render.engine = "BLENDER_WORKBENCH"
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "TEXTURE"
        scene.display.render_aa = "8"
    else:
        render.engine = "BLENDER_EEVEE_NEXT"
        scene.eevee.taa_render_samples = options.samples


def set_camera(camera, c2w: np.ndarray) -> None:
    """Place the camera; d4d's camera-to-world is Blender's own camera frame (looks along -Z)."""
    from mathutils import Matrix

    camera.matrix_world = Matrix([list(row) for row in c2w])
