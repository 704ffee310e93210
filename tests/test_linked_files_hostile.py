"""Hostile assets against the linked-file rule and the bounds before work (docs/security.md).

Each test builds its files itself: an asset folder, and beside it a ``secret`` folder whose
files the asset tries to reach. Disguised formats (GLB bytes named .gltf, a GLB named .obj),
links after the first megabyte, entity-encoded Collada paths, non-base64 data: URIs, huge
data: URIs, sparse 20 GB files and PNG headers declaring 7 GB of pixels.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d4d.curation.sources import LocalFolderSource
from d4d.rendering import linked_files
from d4d.rendering.api import AssetPolicy, Limits, Renderer, check_asset_file
from d4d.rendering.cli import main as render_main
from d4d.rendering.errors import AssetError
from d4d.rendering.image_headers import decoded_bytes
from d4d.rendering.linked_files import outside_links
from d4d.rendering.options import RenderOptions

TRIANGLE = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)


def gltf_json(buffer_uri: str, image_uri: str | None = None) -> dict:
    """A one-triangle glTF whose only buffer is ``buffer_uri`` (36 bytes of positions)."""
    data = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"uri": buffer_uri, "byteLength": 36}], "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}],
    }
    if image_uri:
        data["images"] = [{"uri": image_uri}]
    return data


def glb_bytes(data: dict) -> bytes:
    text = json.dumps(data).encode()
    text += b" " * (-len(text) % 4)
    return struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text)) + struct.pack("<I4s", len(text), b"JSON") + text


@pytest.fixture()
def place(tmp_path):
    """(asset folder, secret folder with geom.bin, x.mtl and x.png holding a marker)."""
    asset, secret = tmp_path / "asset", tmp_path / "secret"
    asset.mkdir()
    secret.mkdir()
    (secret / "geom.bin").write_bytes(TRIANGLE.tobytes())
    (secret / "x.mtl").write_text("newmtl secret\nKd 1 0 0\n")
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(secret / "x.png")
    return asset, secret


def test_glb_bytes_named_gltf_are_checked_as_a_glb(place):
    asset, _ = place
    evil = asset / "evil.gltf"
    evil.write_bytes(glb_bytes(gltf_json("../secret/geom.bin")))
    assert linked_files.content_format(evil) == "glb"
    assert outside_links(evil) == ["../secret/geom.bin"]
    named_right = asset / "fine.glb"
    named_right.write_text(json.dumps(gltf_json("geom.bin", image_uri="../secret/x.png")))  # JSON named .glb: checked as JSON
    assert outside_links(named_right) == ["../secret/x.png"]


def test_another_importers_format_under_a_name_is_refused(place):
    asset, _ = place
    disguised = asset / "model.obj"
    disguised.write_bytes(glb_bytes(gltf_json("geom.bin")))
    with pytest.raises(AssetError) as err:
        outside_links(disguised)
    assert err.value.kind == "unsupported_format" and "glb" in err.value.reason
    fbx = asset / "model.dae"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00\x1a\x00" + bytes(64))
    with pytest.raises(AssetError, match="fbx"):
        outside_links(fbx)


def test_links_after_the_first_megabyte_count(place):
    asset, _ = place
    filler = "v 0 0 0\n" * 140_000  # 1.1 MB
    obj = asset / "late.obj"
    obj.write_text(filler + "mtllib fine.mtl \\\n ../secret/x.mtl\nf 1 2 3\n")  # a continued line, too
    assert obj.stat().st_size > linked_files.CHUNK_BYTES
    assert "../secret/x.mtl" in outside_links(obj)
    for text in ('mtllib "../secret/x.mtl"\n', "mtllib fine.mtl \\ \t\r\n ../secret/x.mtl\n"):  # quoted; blanks after the backslash
        obj.write_text(text)
        assert "../secret/x.mtl" in outside_links(obj), text
    obj.write_text("mtllib fine.mtl \\\n other.mtl\n")
    assert outside_links(obj) == []
    # the texture maps of a library inside the folder, resolved from that library's own folder
    (asset / "materials").mkdir()
    (asset / "materials" / "m.mtl").write_text("newmtl a\n" + "# pad\n" * 200_000 + "map_Kd -bm 1 ../../secret/x.png\n")
    obj.write_text("mtllib materials/m.mtl\nv 0 0 0\n")
    assert outside_links(obj) == ["../../secret/x.png"]
    (asset / "materials" / "m.mtl").write_text("newmtl a\nmap_Kd ../tex.png\n")  # climbs to the asset folder only: fine
    assert outside_links(obj) == []
    dae = asset / "late.dae"
    dae.write_text('<?xml version="1.0"?><COLLADA>' + "<!-- pad -->" * 100_000
                   + "<library_images><image><init_from>&#46;&#46;/secret/x.png</init_from></image></library_images></COLLADA>")
    assert outside_links(dae) == ["../secret/x.png"]


def test_usd_text_layers_are_read_with_the_layers_they_name(place):
    asset, _ = place
    (asset / "sub").mkdir()
    (asset / "root.usda").write_text('#usda 1.0\n(\n    subLayers = [@./sub/layer.usda@]\n)\ndef "A" (references = @@@./ok.usda@@@) {}\n')
    (asset / "sub" / "layer.usda").write_text("#usda 1.0\n" + "# pad\n" * 200_000 + 'def "B" (payload = @../../secret/x.usda@</B>) {}\n'
                                             'def "C" { asset inputs:file = @tex.png@ }\n')
    assert outside_links(asset / "root.usda") == ["../../secret/x.usda"]
    (asset / "sub" / "layer.usda").write_text('#usda 1.0\ndef "B" (payload = @./inner.usdz[x.usda]@) {}\n')
    assert outside_links(asset / "root.usda") == []
    with zipfile.ZipFile(asset / "packed.usdz", "w", zipfile.ZIP_DEFLATED) as package:  # a text layer inside a package
        package.writestr("root.usda", '#usda 1.0\ndef "A" (references = @../secret/x.usda@) {}\n')
        package.writestr("geom.usdc", b"PXR-USDC" + b"@/not/a/path@" * 4)  # binary layers are not read
    assert outside_links(asset / "packed.usdz") == ["../secret/x.usda"]


def test_a_data_uri_that_is_not_base64_is_a_path(place):
    asset, _ = place
    gltf = asset / "data.gltf"
    gltf.write_text(json.dumps(gltf_json("data:x/../../../secret/geom.bin")))
    assert outside_links(gltf) == ["data:x/../../../secret/geom.bin"]
    gltf.write_text(json.dumps(gltf_json("data:application/octet-stream;base64," + "A" * 48)))
    assert outside_links(gltf) == []


def test_a_huge_data_uri_is_streamed_past_and_a_huge_json_is_refused_unparsed(place, monkeypatch):
    asset, _ = place
    gltf = asset / "big.gltf"
    body = json.dumps(gltf_json("data:application/octet-stream;base64,@@", image_uri="../secret/x.png"))
    with open(gltf, "w") as f:
        head, tail = body.split("@@")
        f.write(head)
        for _ in range(60):
            f.write("QUFB" * (1 << 18))  # 60 MiB of base64
        f.write(tail)
    tracemalloc.start()
    try:
        assert outside_links(gltf) == ["../secret/x.png"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"{peak / 2**20:.0f} MiB held while checking a 60 MiB data: URI"
    monkeypatch.setattr(linked_files, "MAX_GLTF_JSON_BYTES", 1 << 20)
    gltf.write_text(json.dumps({**gltf_json("geom.bin"), "extras": {"name": "x" * (2 << 20)}}))
    with pytest.raises(AssetError) as err:
        outside_links(gltf)
    assert err.value.kind == "too_large" and "not parsed" in err.value.reason


def test_size_is_checked_before_anything_is_read(place):
    asset, _ = place
    huge = asset / "huge.obj"
    with open(huge, "wb") as f:
        f.truncate(20 * 10**9)  # sparse: 20 GB, no blocks
    (asset / "small.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    started = time.monotonic()
    with pytest.raises(AssetError) as err:
        check_asset_file(huge)
    records = {r.metadata["relative_path"]: r for r in LocalFolderSource(asset).records()}
    assert time.monotonic() - started < 5.0  # hashing 20 GB takes about a minute
    assert err.value.kind == "too_large"
    assert records["huge.obj"].problem.reason == "too_large" and records["huge.obj"].sha256 is None
    assert records["small.obj"].problem is None and len(records["small.obj"].sha256) == 64


def png_header(width: int, height: int, depth: int = 8) -> bytes:
    """A PNG's signature and IHDR chunk declaring ``width`` x ``height`` (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def test_decoded_size_is_read_from_headers():
    assert decoded_bytes(io.BytesIO(png_header(43_000, 43_000))) == 43_000 * 43_000 * 4
    assert decoded_bytes(io.BytesIO(png_header(100, 50, depth=16))) == 100 * 50 * 4 * 4
    for fmt in ("JPEG", "BMP", "WEBP", "TGA"):
        out = io.BytesIO()
        Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(out, fmt)
        assert decoded_bytes(out, f"t.{fmt.lower()}") == 53 * 37 * 4, fmt
    assert decoded_bytes(io.BytesIO(b"not an image at all")) is None


def test_d4d_render_prints_input_reason_detail_on_one_line(place, capsys):
    asset, _ = place
    evil = asset / "evil.gltf"
    evil.write_bytes(glb_bytes(gltf_json("../secret/geom.bin")))
    assert render_main([str(evil), "--out", str(asset.parent / "out"), "-q"]) == 1
    assert render_main([str(asset / "none.glb"), "--out", str(asset.parent / "out"), "-q"]) == 1
    (asset.parent / "out").mkdir()
    assert render_main([str(evil), "--out", str(asset.parent / "out"), "-q"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{evil}: linked_file_outside_asset: ") and "../secret/geom.bin" in lines[0]
    assert lines[1].startswith(f"{asset / 'none.glb'}: missing_file: ")
    assert lines[2] == f"{asset.parent / 'out'}: output_exists: the output directory exists (use --overwrite to replace it)"
    assert len(lines) == 3


# -- inside Blender ----------------------------------------------------------------------------

WORKER_ONLY = """
import json, sys
from pathlib import Path
import bpy
from d4d.rendering.blender.session import AssetSession
from d4d.rendering.errors import AssetError
results = {}
for path in sys.argv[2:]:
    try:
        AssetSession(bpy, Path(path), max_texture_bytes=10**9)
        results[path] = ["ok"]
    except AssetError as exc:
        results[path] = [exc.kind, exc.reason]
Path(sys.argv[1]).write_text(json.dumps(results))
"""


@pytest.mark.blender
def test_the_worker_refuses_what_the_pre_check_would_have_let_through(place):
    """The last line of defence on its own (no pre-check): Blender's import of a GLB named
    .gltf whose buffer is outside, of an OBJ whose texture is outside, and of an OBJ whose
    texture's header declares 7 GB, each fail before anything is decoded or rendered."""
    pytest.importorskip("bpy")
    asset, secret = place
    evil = asset / "evil.gltf"
    evil.write_bytes(glb_bytes(gltf_json("../secret/geom.bin")))
    (asset / "tri.obj").write_text("mtllib tri.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl a\nf 1/1 2/2 3/3\n")
    (asset / "tri.mtl").write_text(f"newmtl a\nmap_Kd {secret / 'x.png'}\n")
    big = asset / "big"
    big.mkdir()
    (big / "tri.obj").write_text((asset / "tri.obj").read_text())
    (big / "tri.mtl").write_text("newmtl a\nmap_Kd huge.png\n")
    (big / "huge.png").write_bytes(png_header(43_000, 43_000))
    stale = asset / "stale"  # an author's path to nothing: not read, so only missing
    stale.mkdir()
    (stale / "tri.obj").write_text((asset / "tri.obj").read_text())
    (stale / "tri.mtl").write_text(f"newmtl a\nmap_Kd {secret / 'gone' / 'x.png'}\n")
    fine = asset / "fine.gltf"
    (asset / "geom.bin").write_bytes(TRIANGLE.tobytes())
    fine.write_text(json.dumps(gltf_json("geom.bin")))
    paths = [evil, asset / "tri.obj", big / "tri.obj", stale / "tri.obj", fine]
    answers = asset.parent / "results.json"
    run = subprocess.run([sys.executable, "-c", WORKER_ONLY, str(answers), *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(answers.read_text())
    assert results[str(evil)][0] == "linked_file_outside_asset" and "secret/geom.bin" in results[str(evil)][1], run.stderr[-2000:]
    assert results[str(asset / "tri.obj")][0] == "linked_file_outside_asset" and "x.png" in results[str(asset / "tri.obj")][1]
    assert results[str(big / "tri.obj")][0] == "too_large" and "huge.png" in results[str(big / "tri.obj")][1]
    assert results[str(stale / "tri.obj")][0] == "missing_linked_files"
    assert results[str(fine)] == ["ok"]


@pytest.mark.blender
def test_the_renderer_refuses_fbx_images_and_late_links_outside_the_folder(place, tmp_path):
    """Through the public Renderer: a binary FBX (written by Blender) whose texture is the
    secret PNG, refused as the importer loads it (and opened when outside links are allowed);
    an OBJ and a Collada file whose links come after the first MiB and GLB bytes named .gltf,
    refused before Blender opens them; no output in any case."""
    bpy = pytest.importorskip("bpy")
    asset, secret = place
    fbx = asset / "textured.fbx"
    script = f"""
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_plane_add()
material = bpy.data.materials.new("m"); material.use_nodes = True
node = material.node_tree.nodes.new("ShaderNodeTexImage"); node.image = bpy.data.images.load({str(secret / 'x.png')!r})
material.node_tree.links.new(node.outputs[0], material.node_tree.nodes["Principled BSDF"].inputs[0])
bpy.context.object.data.materials.append(material)
bpy.ops.export_scene.fbx(filepath={str(fbx)!r}, path_mode="RELATIVE")
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    assert bpy is not None and b"Kaydara FBX Binary" in fbx.read_bytes()[:32]
    late_obj, late_dae, evil = asset / "late.obj", asset / "late.dae", asset / "evil.gltf"
    late_obj.write_text("v 0 0 0\n" * 140_000 + "mtllib ../secret/x.mtl\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    late_dae.write_text('<?xml version="1.0"?><COLLADA>' + "<!-- pad -->" * 100_000
                        + "<library_images><image><init_from>../secret/x.png</init_from></image></library_images></COLLADA>")
    evil.write_bytes(glb_bytes(gltf_json("../secret/geom.bin")))
    with Renderer(limits=Limits()) as renderer:
        for path in (fbx, late_obj, late_dae, evil):  # through the public API: refused, no output
            with pytest.raises(AssetError) as err:
                renderer.render(path, tmp_path / "out" / path.stem, RenderOptions(frames=2, resolution=16, engine="workbench"))
            assert err.value.kind == "linked_file_outside_asset" and "secret" in err.value.reason, err.value
        assert not (tmp_path / "out").exists()
        opened = renderer.open(fbx, policy=AssetPolicy(allow_outside_links=True))
        assert opened.description["counts"]["images"] == 1


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name ([] when the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (fields := _stat(int(e))) and int(fields[1]) == pid and fields[0] != "Z"]


@pytest.mark.blender
def test_d4d_render_stopped_by_sigint_says_so_in_one_line_and_stops_blender(place):
    pytest.importorskip("bpy")
    asset, _ = place
    (asset / "geom.bin").write_bytes(TRIANGLE.tobytes())
    fine = asset / "fine.gltf"
    fine.write_text(json.dumps(gltf_json("geom.bin")))
    out = asset.parent / "out"
    proc = subprocess.Popen([sys.executable, "-m", "d4d.rendering.cli", str(fine), "--out", str(out), "-q", "--frames", "200"],
                            stderr=subprocess.PIPE, text=True)
    deadline, workers = time.monotonic() + 120, []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.5)
        workers = _children(proc.pid)
    time.sleep(3.0)  # Blender starting, importing or rendering
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith(f"{fine}: interrupted: "), err[-2000:]
    assert workers and not [pid for pid in workers if _stat(pid)[:1] not in ([], ["Z"])]  # Blender is gone
    assert not out.exists()
