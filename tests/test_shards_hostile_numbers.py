"""Hostile numbers in shards and render directories (issue 20 item 5; docs/security.md, "Hostile numbers").

Shards are built with the project's writer, then one value per shard is tampered with and the
content hash recomputed (so the hash says nothing is wrong). The real commands run as
subprocesses: each must exit with a status (not a signal) and one line naming the input and
the reason, and a decode bomb must stop at the budget instead of decoding every frame.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from d4d.reconstruction.inputs import load_input
from d4d.rendering.contract import RenderContractError, load_render
from d4d.shards.dataset import ShardDataset
from d4d.shards.schema import HASH_COLUMN, content_hash
from d4d.shards.tensors import tensor_from_columns
from d4d.shards.verify import verify_shards
from d4d.shards.video import VideoDecodeError, decode_rgba, encode_rgba
from d4d.shards.writer import ShardWriteConfig, write_shards
from d4d.testing.shards_helpers import make_shard_render

BIN = Path(sys.executable).parent
FRAMES, SIZE = 4, 16


def repeated_video(encoder: str, pix_fmt: str, size: int, count: int) -> bytes:
    """A Matroska video of ``count`` size x size frames made of two encoded frames, the second's
    packet repeated: a few bytes a frame (about 38 KB for 1200 frames of 512x512 H.264)."""
    context = av.CodecContext.create(encoder, "w")
    context.width = context.height = size
    context.pix_fmt, context.time_base = pix_fmt, Fraction(1, 24)
    if encoder == "libx264":
        context.options = {"preset": "ultrafast", "bf": "0"}
    frame = av.VideoFrame.from_ndarray(np.zeros((size, size, 4), np.uint8), format="rgba").reformat(format=pix_fmt)
    packets = []
    for pts in range(2):
        frame.pts = pts
        packets += context.encode(frame)
    packets += context.encode(None)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream(encoder, rate=24)
        stream.width = stream.height = size
        stream.pix_fmt = pix_fmt
        stream.codec_context.extradata = context.extradata
        for index in range(count):
            packet = av.Packet(bytes(packets[min(index, 1)]))
            packet.pts = packet.dts = index
            packet.time_base, packet.stream = Fraction(1, 24), stream
            packet.is_keyframe = index == 0 or encoder == "ffv1"
            container.mux(packet)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    render = make_shard_render(root / "renders", "ball", frames=FRAMES, size=SIZE)
    write_shards([render], root / "shards", ShardWriteConfig(codec="lossless"))
    return next((root / "shards").glob("part-*.parquet"))


def tampered(pristine: Path, out_dir: Path, name: str, edit, index: int = 0) -> Path:
    """A copy of the pristine shard as ``out_dir/part-{index}``, its row edited, uid ``name``, hash recomputed."""
    table = pq.read_table(pristine)
    row = table.to_pylist()[0]
    edit(row)
    row["uid"] = name
    row[HASH_COLUMN] = content_hash(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"part-{index:05d}.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=table.schema), path)
    return path


#: Runs argv[1:] and prints its exit status and peak resident memory (KiB). The command is forked
#: from this small, freshly started process: forked straight from the test process, its peak
#: would start at the test process's own (often over a GiB late in a full test run).
MEASURE = ("import resource, subprocess, sys; status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
           "print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run(*command: str) -> tuple[int, str, int]:
    """(exit status, stderr, peak resident memory in MiB) of a command (a signal shows as a negative status)."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *map(str, command)], capture_output=True, text=True)
    status, peak_kib = map(int, result.stdout.split())
    return status, result.stderr, peak_kib // 1024


def set_size(row: dict, side: int) -> None:
    row["width"] = row["height"] = side
    focal = 0.5 * side / math.tan(0.5 * row["camera_angle_x"])
    row["K"] = [focal, 0.0, side / 2, 0.0, focal, side / 2, 0.0, 0.0, 1.0]


def set_item(column: str, index: int, value):
    return lambda row: row[column].__setitem__(index, value)


# One shard per hostile value; each must be named by verify (the file, the row and the reason).
BOMB = {}  # filled once: the FFV1 decode bomb (1200 frames of 512x512 in 0.7 MB)


def bomb(row: dict) -> None:
    set_size(row, 512)
    for video in ("dynamic", "static", "front"):
        row[f"{video}_video"] = BOMB["ffv1"]


CASES = {
    "nan_camera": (set_item("dynamic_c2w", 3, float("nan")), "dynamic_c2w frame 0: camera not finite"),
    "inf_time": (set_item("static_times", 1, float("inf")), "static_times[1] is not a time in [0, 1]"),
    "far_camera": (set_item("front_c2w", 16 + 7, 1e300), "front_c2w frame 1: camera farther than 10000 units from the origin"),
    "tiny_fov": (lambda row: row.update(camera_angle_x=1e-300), "camera_angle_x 1e-300 is not a field of view in [1, 170] degrees"),
    "negative_frames": (lambda row: row.update(num_frames=-4), "num_frames -4 is not a positive frame count"),
    "over_budget": (lambda row: row.update(num_frames=2_000_000_000), "exceeds the decode budget of 1 GiB"),
    "bomb": (bomb, "dynamic video: has more than 4 frames (the expected count); decoding stopped"),
    "h264": (lambda row: row.update(dynamic_video=BOMB["h264"]), "dynamic video: stream is h264, the row's codec ffv1-bgra-mkv is ffv1"),
}


@pytest.fixture(scope="module")
def hostile(pristine, tmp_path_factory) -> dict[str, Path]:
    """Every case of CASES as its own shard file in one directory (part-00000 ... in CASES order)."""
    BOMB["ffv1"] = repeated_video("ffv1", "bgra", 512, 1200)
    BOMB["h264"] = repeated_video("libx264", "yuv420p", SIZE, FRAMES)
    out = tmp_path_factory.mktemp("hostile_shards")
    return {name: tampered(pristine, out / "all", name, edit, index) for index, (name, (edit, _)) in enumerate(CASES.items())}


def test_verify_names_every_hostile_value_and_stops_the_decode_bomb(hostile):
    shard_dir = next(iter(hostile.values())).parent
    status, stderr, peak_mib = run(BIN / "d4d-shards", "verify", shard_dir)
    assert status == 1, stderr  # a status, not a signal
    assert "Traceback" not in stderr
    for name, (_, reason) in CASES.items():
        assert f"{hostile[name]}: row 0 (uid {name}): " in stderr and reason in stderr, (name, stderr)
    # Decoding the bomb's three 1200-frame videos whole would hold 1.2 GiB of frames at least.
    assert peak_mib < 900, peak_mib


def test_reconstruct_exits_with_one_line_for_a_hostile_row_and_a_hostile_render(hostile, pristine, tmp_path):
    status, stderr, _ = run(BIN / "d4d-reconstruct", f"{hostile['nan_camera']}#0", "--out", tmp_path / "a", "--device", "cpu")
    assert status == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(f"row 0 (uid nan_camera): {CASES['nan_camera'][1]}")
    render = make_shard_render(tmp_path, "narrow", frames=FRAMES, size=SIZE)
    transforms = json.loads((render / "transforms.json").read_text())
    (render / "transforms.json").write_text(json.dumps({**transforms, "camera_angle_x": 1e-300}))
    status, stderr, _ = run(BIN / "d4d-reconstruct", render, "--out", tmp_path / "b", "--device", "cpu")
    assert status == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        f"{render / 'transforms.json'}: camera_angle_x must be in [1, 170] degrees (0.0175..2.9671 radians), got 1e-300")


@pytest.mark.parametrize("name", ["tiny_fov", "inf_time", "negative_frames", "bomb", "h264"])
def test_every_hostile_row_is_refused_as_reconstruction_input(hostile, name):
    with pytest.raises(ValueError) as caught:
        load_input(f"{hostile[name]}#0")
    assert CASES[name][1] in str(caught.value) and str(hostile[name]) in str(caught.value)


def test_train_refuses_a_shard_declaring_negative_frame_counts(hostile, tmp_path):
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    (shard_dir / "part-00000.parquet").write_bytes(hostile["negative_frames"].read_bytes())
    status, stderr, _ = run(BIN / "d4d-train", "--shards", shard_dir, "--output", tmp_path / "run", "--config", "tiny-text")
    assert status == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(f"{shard_dir / 'part-00000.parquet'}: row 0 (uid negative_frames): "
                                                    f"{CASES['negative_frames'][1]} (and 4 more; d4d-shards verify lists every problem)")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.safetensors"))


@pytest.mark.parametrize("name", ["nan_camera", "far_camera", "over_budget"])
def test_the_readers_refuse_hostile_rows_when_they_open_the_shards(hostile, name):
    with pytest.raises(ValueError) as caught:
        ShardDataset(hostile[name], videos=("dynamic",))
    assert str(caught.value).startswith(f"{hostile[name]}: row 0 (uid {name}): ") and CASES[name][1] in str(caught.value)


def test_a_uid_with_line_breaks_stays_on_one_line(pristine, tmp_path):
    path = tampered(pristine, tmp_path / "s", "x", set_item("dynamic_times", 0, -1.0))
    table = pq.read_table(path)
    row = {**table.to_pylist()[0], "uid": "evil\nFAKE: row 9 (uid y): fine"}
    row[HASH_COLUMN] = content_hash(row)
    pq.write_table(pa.Table.from_pylist([row], schema=table.schema), path)
    problems = [str(p) for p in verify_shards(path.parent)[1]]
    assert problems == [f"{path}: row 0 (uid evil\\nFAKE: row 9 (uid y): fine): dynamic_times[0] is not a time in [0, 1]"]
    with pytest.raises(ValueError) as caught:
        ShardDataset(path)
    assert str(caught.value) == problems[0]


def test_the_pytorch_reader_stops_a_decode_bomb_at_the_row_s_frame_count(hostile):
    dataset = ShardDataset(hostile["bomb"], videos=("dynamic",), shuffle=False)  # its values are valid
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as caught:
            next(iter(dataset))
        assert tracemalloc.get_traced_memory()[1] < 64 * 2**20  # 4 frames of 1 MiB decoded, not 1200
    finally:
        tracemalloc.stop()
    assert str(caught.value) == f"{hostile['bomb']}: row 0 (uid bomb): {CASES['bomb'][1]}"


def test_the_decoder_stops_at_the_budget_while_decoding():
    h264 = repeated_video("libx264", "yuv420p", 512, 1200)  # 38 KB; 1.2 GB of RGBA decoded whole
    assert len(h264) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(VideoDecodeError, match="has more than 24 frames"):
            decode_rgba(h264, frames=24, size=(512, 512))
        assert tracemalloc.get_traced_memory()[1] < 64 * 2**20  # 24 frames of 1 MiB, not 1200
        tracemalloc.reset_peak()
        with pytest.raises(VideoDecodeError, match="exceed the decode budget of 0.06 GiB"):
            decode_rgba(h264, max_bytes=64 * 2**20)  # no expectation: the byte budget alone
        assert tracemalloc.get_traced_memory()[1] < 96 * 2**20
    finally:
        tracemalloc.stop()
    with pytest.raises(VideoDecodeError, match="stream is 512x512, expected 16x16"):
        decode_rgba(h264, frames=24, size=(16, 16))  # refused on the header, before any frame
    with pytest.raises(VideoDecodeError, match="cannot decode video"):
        decode_rgba(h264, max_bytes=2**19)  # FFmpeg's max_pixels refuses the first 512x512 frame itself
    with pytest.raises(VideoDecodeError, match="has 4 frames, expected 5"):
        decode_rgba(repeated_video("libx264", "yuv420p", 16, 4), frames=5)
    with pytest.raises(VideoDecodeError, match="expected frame count -1 is not positive"):
        decode_rgba(h264, frames=-1)
    frames = np.zeros((3, 8, 8, 4), np.uint8)
    assert decode_rgba(encode_rgba(frames, "lossless"), frames=3, size=(8, 8), codec="ffv1-bgra-mkv").shape == (3, 8, 8, 4)


def edit_transforms(render: Path, edit) -> None:
    path = render / "transforms.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda d: d.update(camera_angle_x=1e-300), "camera_angle_x must be in [1, 170] degrees"),
    (lambda d: d.update(camera_angle_x=3.1), "camera_angle_x must be in [1, 170] degrees"),
    (lambda d: d["frames"][2].update(time=2.0), "dynamic frame 2.time: 2.0 is not in [0, 1]"),
    (lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(0, 3.0), "dynamic frame 1: transform_matrix not a rigid transform"),
    (lambda d: d["frames"][0]["transform_matrix"][1].__setitem__(3, 1e300), "dynamic frame 0: transform_matrix farther than 10000"),
    (lambda d: d["frames"][0].update(index="a"), "dynamic frame index must be an integer"),
    (lambda d: d.update(w=10**30), "w and h must be integers in 1..16384"),
])
def test_hostile_transforms_json_values_are_refused_with_the_field(tmp_path, edit, reason):
    render = make_shard_render(tmp_path, "r", frames=FRAMES, size=SIZE, videos=("dynamic",))
    edit_transforms(render, edit)
    with pytest.raises(RenderContractError, match=re.escape(reason)) as caught:
        load_render(render)
    assert str(caught.value).startswith(str(render / "transforms.json"))


def test_non_finite_json_numbers_and_frames_of_another_size_are_refused(tmp_path):
    render = make_shard_render(tmp_path, "r", frames=FRAMES, size=SIZE, videos=("dynamic",))
    path = render / "transforms.json"
    text = path.read_text()
    for bad in ('"time": NaN', '"time": 1e999'):
        path.write_text(text.replace('"time": 0.0', bad, 1))
        with pytest.raises(RenderContractError, match=f"{path}: not valid JSON"):
            load_render(render)
    path.write_text(text)
    asset = render / "asset.json"
    asset.write_text(asset.read_text().replace("{", '{"motion_magnitude": Infinity, ', 1))
    with pytest.raises(RenderContractError, match=f"{asset}: not valid JSON"):
        load_render(render)
    asset.write_text(asset.read_text().replace('"motion_magnitude": Infinity, ', "", 1))
    from PIL import Image
    Image.new("RGBA", (4096, 4096)).save(render / "dynamic" / "001.png")
    with pytest.raises(RenderContractError, match="001.png: frame is 4096x4096, transforms.json says 16x16"):
        load_render(render)


@pytest.mark.parametrize("shape", [[-1, -8], [2**62, 2**62, 4], "[2, 4]"])
def test_tensor_shapes_are_checked_before_any_tensor_is_built(shape):
    with pytest.raises(ValueError, match="tensor"):
        tensor_from_columns(b"\0" * 32, shape, "float32")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 5000 + "}"])
def test_json_that_breaks_the_parser_is_a_contract_error(tmp_path, text):
    render = make_shard_render(tmp_path, "r", frames=FRAMES, size=SIZE, videos=("dynamic",))
    (render / "asset.json").write_text(text)
    with pytest.raises(RenderContractError, match=f"{render / 'asset.json'}: not valid JSON"):
        load_render(render)
