"""Import an asset file into an empty Blender scene, by format. Needs bpy.

Covers what Objaverse 1.0 and XL contain: glb, gltf, fbx, obj, dae, abc, blend,
usd/usda/usdc/usdz, stl, ply. A .blend file is opened with its scripts disabled, and the
preference that would let drivers or scripts auto-run stays off.
"""

from __future__ import annotations

from pathlib import Path

from d4d.rendering.errors import AssetError

#: Extension -> (importer name, bpy operator path).
IMPORTERS = {
    ".glb": ("gltf", "import_scene.gltf"),
    ".gltf": ("gltf", "import_scene.gltf"),
    ".fbx": ("fbx", "import_scene.fbx"),
    ".obj": ("obj", "wm.obj_import"),
    ".dae": ("collada", "wm.collada_import"),
    ".abc": ("alembic", "wm.alembic_import"),
    ".usd": ("usd", "wm.usd_import"),
    ".usda": ("usd", "wm.usd_import"),
    ".usdc": ("usd", "wm.usd_import"),
    ".usdz": ("usd", "wm.usd_import"),
    ".stl": ("stl", "wm.stl_import"),
    ".ply": ("ply", "wm.ply_import"),
    ".blend": ("blend", "wm.open_mainfile"),
}

SUPPORTED_EXTENSIONS = tuple(sorted(IMPORTERS))

#: Importer messages that mean a file the asset links to is missing (glTF: an external .bin).
MISSING_RESOURCE_MESSAGES = ("Missing resource", "No such file or directory")


def disable_auto_scripts(bpy) -> None:
    """Keep Python in .blend files (scripts, driver expressions) from running."""
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False


def _operator(bpy, dotted: str):
    module, name = dotted.split(".")
    return getattr(getattr(bpy.ops, module), name)


def import_asset(bpy, path: Path) -> str:
    """Import ``path`` into the current (empty) scene and return the importer's name.

    Raises AssetError("unsupported_format" | "import_failed") with the importer's reason.
    """
    suffix = path.suffix.lower()
    if suffix not in IMPORTERS:
        raise AssetError("unsupported_format", f"unsupported format {suffix!r} (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    name, dotted = IMPORTERS[suffix]
    disable_auto_scripts(bpy)
    kwargs = {"filepath": str(path)}
    if name == "blend":
        kwargs.update(load_ui=False, use_scripts=False)
    elif name == "alembic":
        kwargs.update(set_frame_range=True)
    elif name == "usd":
        kwargs.update(set_frame_range=True)
    try:
        result = _operator(bpy, dotted)(**kwargs)
    except RuntimeError as exc:
        reason = _first_error_line(str(exc))
        kind = "missing_linked_files" if any(m in reason for m in MISSING_RESOURCE_MESSAGES) else "import_failed"
        raise AssetError(kind, f"{name} importer failed: {reason}") from None
    if "FINISHED" not in result:
        raise AssetError("import_failed", f"{name} importer returned {sorted(result)}")
    if name == "blend":
        disable_auto_scripts(bpy)
    return name


def _first_error_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line.removeprefix("Error: ")[:300]
    return (lines[-1] if lines else "unknown error")[:300]
