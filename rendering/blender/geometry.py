"""Evaluated geometry over time: bounding boxes for normalisation, vertices for motion. Needs bpy."""

from __future__ import annotations

import numpy as np

GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


def _render_visible_collections(bpy) -> set:
    """Collections whose objects render: not hidden from renders, not excluded, nor any parent."""
    visible, stack = set(), [(bpy.context.scene.collection, bpy.context.view_layer.layer_collection)]
    while stack:
        collection, layer = stack.pop()
        visible.add(collection.name_full)
        for child in layer.children:
            if not (child.exclude or child.collection.hide_render):
                stack.append((child.collection, child))
    return visible


def renderable_objects(bpy) -> list:
    """Geometry that renders: not hidden from renders and in a rendered collection (the glTF
    importer, for one, keeps bone display shapes in a collection hidden from renders)."""
    visible = _render_visible_collections(bpy)
    return [
        o
        for o in bpy.context.scene.objects
        if o.type in GEOMETRY_TYPES and not o.hide_render and any(c.name_full in visible for c in o.users_collection)
    ]


def face_count(bpy) -> int:
    """Faces of the renderable meshes as stored (before modifiers), a cheap size bound."""
    return sum(len(o.data.polygons) for o in renderable_objects(bpy) if o.type == "MESH")


def set_frame(bpy, frame: float) -> None:
    """Show a (fractional) Blender frame."""
    whole = int(np.floor(frame))
    bpy.context.scene.frame_set(whole, subframe=float(frame - whole))


def _world_vertices(obj, depsgraph) -> tuple[np.ndarray, int]:
    """Evaluated vertices of one object in world space [N, 3] float64, and its polygon count."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        count = len(mesh.vertices)
        coords = np.empty(count * 3, dtype=np.float64)
        if count:
            mesh.vertices.foreach_get("co", coords)
        polygons = len(mesh.polygons)
    finally:
        evaluated.to_mesh_clear()
    coords = coords.reshape(-1, 3)
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    return coords @ matrix[:3, :3].T + matrix[:3, 3], polygons


def sample_geometry(bpy, frames: np.ndarray, max_vertices_per_object: int = 20000) -> dict:
    """Evaluate every renderable object at each frame.

    Returns:
        dict with ``bbox_min``, ``bbox_max`` [3] (world, over all frames), ``faces`` (at the
        first frame), ``vertices`` (at the first frame) and ``tracks``: a list over frames of
        [M, 3] subsampled world vertices (the same M vertices every frame when topology is
        constant; None for a frame whose topology differs from the first).
    """
    objects = renderable_objects(bpy)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    tracks, faces, vertices, counts0 = [], 0, 0, None
    for i, frame in enumerate(frames):
        set_frame(bpy, frame)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        per_object, counts = [], []
        for obj in objects:
            verts, polygons = _world_vertices(obj, depsgraph)
            counts.append(len(verts))
            if i == 0:
                faces += polygons
                vertices += len(verts)
            if len(verts):
                lo, hi = np.minimum(lo, verts.min(0)), np.maximum(hi, verts.max(0))
                step = max(1, len(verts) // max_vertices_per_object)
                per_object.append(verts[::step])
        if i == 0:
            counts0 = counts
        tracks.append(np.concatenate(per_object) if per_object and counts == counts0 else None)
    return {"bbox_min": lo, "bbox_max": hi, "faces": faces, "vertices": vertices, "tracks": tracks}


def geometric_motion(tracks: list, scale: float) -> dict:
    """Render-free motion of the evaluated vertices relative to the first frame.

    Args:
        tracks: from sample_geometry, [T] of [M, 3] arrays (or None).
        scale: the normalisation scale, so displacements are in normalised-scene units
            (the scene's largest side is 1).

    Returns:
        ``max_displacement`` (largest single-vertex displacement), ``mean_displacement``
        (mean over frames and vertices), ``per_frame_rms`` [T], and ``comparable`` (False when
        the topology changed over time; then displacements come from the bounding box only).
    """
    if not tracks or tracks[0] is None or any(t is None for t in tracks):
        return {"max_displacement": None, "mean_displacement": None, "per_frame_rms": None, "comparable": False}
    first = tracks[0]
    if len(first) == 0:
        return {"max_displacement": 0.0, "mean_displacement": 0.0, "per_frame_rms": [0.0] * len(tracks), "comparable": True}
    distances = np.stack([np.linalg.norm(t - first, axis=1) for t in tracks]) * scale
    return {
        "max_displacement": float(distances.max()),
        "mean_displacement": float(distances.mean()),
        "per_frame_rms": [float(x) for x in np.sqrt((distances**2).mean(axis=1))],
        "comparable": True,
    }
