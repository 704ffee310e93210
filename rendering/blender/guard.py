"""The worker's last line of defence for linked files and texture sizes. Needs bpy.

``rendering.linked_files`` reads an asset's links before Blender opens it; this module checks
what Blender actually does with them:

- ``ImportGuard``, while an importer runs: every file Python opens (the glTF importer's
  buffers, the FBX importer's file) must lie in the asset's folder or in Python's and
  Blender's own installation, else the open is refused and recorded; every image the FBX
  importer loads (``bpy_extras.image_utils.load_image``) is checked the moment it is created,
  before the importer can decode it: its folder and its declared size.
- ``check_scene_files``, after import: every file-backed datablock (images, packed or not, by
  the path they came from; libraries, sounds, movie clips, fonts, cache files, volumes) whose
  file exists must lie in the asset's folder (``linked_file_outside_asset``), and every image's
  declared decoded size must fit the bound (``too_large``), before any pixel is decoded or
  anything rendered. A path to nothing is left to ``missing_linked_files``: nothing was read.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from d4d.rendering.errors import AssetError
from d4d.rendering.image_headers import decoded_bytes
from d4d.rendering.linked_files import within

#: bpy.data collections whose items name a file (``filepath``).
FILE_COLLECTIONS = ("images", "libraries", "sounds", "movieclips", "fonts", "cache_files", "volumes")

_active: ImportGuard | None = None


def _audit(event: str, args: tuple) -> None:
    guard = _active
    if guard is not None and event == "open" and args and isinstance(args[0], (str, bytes)):
        guard.check_open(os.fsdecode(args[0]))


class ImportGuard:
    """Context manager around one import. Args: the asset's folder, whether links must stay in
    it (``contain``), and the decoded-size bound of one image in bytes (0: none)."""

    def __init__(self, bpy, folder: Path, contain: bool, max_texture_bytes: int):
        self.bpy, self.folder, self.contain, self.max_texture_bytes = bpy, folder, contain, max_texture_bytes
        self.trusted = [p for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(bpy.__file__))} if p]
        self.refused: list[str] = []
        self.error: AssetError | None = None

    def check_open(self, path: str) -> None:
        path = os.path.abspath(path)
        if self.error is not None:  # the import is failing on our refusal: its traceback may read sources anywhere
            return
        if not self.contain or within(self.folder, path) or any(within(Path(root), path) for root in self.trusted):
            return
        self.refused.append(path)
        raise PermissionError(f"d4d: {path} is outside the asset's folder")

    def _checked_load_image(self, original):
        def load_image(*args, **kwargs):
            image = original(*args, **kwargs)
            if image is not None:
                try:
                    check_image(self.bpy, image, self.folder, self.contain, self.max_texture_bytes)
                except AssetError as exc:
                    self.error = self.error or exc
                    raise
            return image
        return load_image

    def __enter__(self) -> ImportGuard:
        global _active
        if not getattr(sys, "_d4d_audit_hook", False):
            sys.addaudithook(_audit)
            sys._d4d_audit_hook = True
        from bpy_extras import image_utils

        self._image_utils, self._original = image_utils, image_utils.load_image
        image_utils.load_image = self._checked_load_image(self._original)
        _active = self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = None
        self._image_utils.load_image = self._original

    def raise_if_refused(self) -> None:
        """AssetError for what the import tried outside the bounds (a refused image first, then refused opens)."""
        if self.error is not None:
            raise self.error
        if self.refused:
            raise AssetError("linked_file_outside_asset", f"the importer tried to read outside the asset's folder (refused): {', '.join(self.refused[:3])}")


def _path(bpy, block) -> str:
    return os.path.normpath(bpy.path.abspath(block.filepath, library=block.library))


def _outside(folder: Path, path: str) -> bool:
    """Whether ``path`` is a file outside ``folder`` that exists: a path that names nothing
    cannot have been read (FBX and .blend files keep their author's absolute paths beside the
    data they embed)."""
    return not within(folder, path) and os.path.lexists(path)


def check_image(bpy, image, folder: Path, contain: bool, max_texture_bytes: int) -> None:
    """AssetError when ``image`` came from outside ``folder`` (``contain``) or declares a decoded
    size over ``max_texture_bytes`` (0: no bound); reads its header only."""
    path = _path(bpy, image) if image.filepath else ""
    if contain and path and _outside(folder, path):
        raise AssetError("linked_file_outside_asset", f"image outside the asset's folder (not read): {path}")
    if not max_texture_bytes or image.source != "FILE":
        return
    name = Path(image.filepath).name or image.name
    try:
        if image.packed_file is not None:
            size = decoded_bytes(io.BytesIO(image.packed_file.data), name)
        elif path and os.path.isfile(path):
            with open(path, "rb") as f:
                size = decoded_bytes(f, name)
        else:
            return
    except OSError:
        return  # unreadable: missing_linked_files / unreadable_texture report it
    if size is not None and size > max_texture_bytes:
        raise AssetError("too_large", f"texture {name} decodes to {size / 1e6:.0f} MB (limit {max_texture_bytes / 1e6:g} MB; not decoded)")


def check_scene_files(bpy, folder: Path, contain: bool, max_texture_bytes: int) -> None:
    """Every file-backed datablock of the imported scene inside ``folder`` (``contain``) and every
    image's declared decoded size within the bound; AssetError otherwise. Decodes nothing."""
    if contain:
        outside = sorted({_path(bpy, block) for name in FILE_COLLECTIONS for block in getattr(bpy.data, name, ())
                          if block.filepath and not block.filepath.startswith("<") and _outside(folder, _path(bpy, block))})
        if outside:
            raise AssetError("linked_file_outside_asset", f"files outside the asset's folder (not rendered): {', '.join(outside[:3])}")
    for image in bpy.data.images:
        check_image(bpy, image, folder, False, max_texture_bytes)
