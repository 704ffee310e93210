"""MP4 files, one way for every d4d output (render previews, samples, validation videos,
reconstruction turntables): H.264 (libx264, CRF 18) in yuv420p, which every player opens;
frames with an odd side are padded to even by ffmpeg's macro-block rule. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d4d.files import replace_with

#: Frames per second of d4d's MP4s unless a caller says otherwise.
MP4_FPS = 8


def write_mp4(frames_uint8: np.ndarray, path: str | Path, fps: int = MP4_FPS) -> Path:
    """uint8 frames [T, H, W, 3] -> an H.264 MP4 at ``path`` (replaced atomically)."""
    import imageio.v2 as imageio

    frames_uint8 = np.asarray(frames_uint8)
    if frames_uint8.dtype != np.uint8 or frames_uint8.ndim != 4 or frames_uint8.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames_uint8.dtype} {frames_uint8.shape}")

    def write(tmp: Path) -> None:
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2,
                                output_params=["-crf", "18"], ffmpeg_log_level="error") as writer:
            for frame in frames_uint8:
                writer.append_data(frame)

    return replace_with(Path(path), write)
