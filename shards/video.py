"""Encode and decode RGBA frame stacks as video files in memory (PyAV).

Two codecs keep the alpha channel:

- ``lossy`` (default): VP9 ``yuva420p`` in WebM (libvpx-vp9, constant quality ``crf``).
  FFmpeg's built-in VP9 decoder drops the alpha plane WebM stores beside the colour, so
  decoding uses libvpx-vp9, which restores it. Colour is 4:2:0 subsampled; the tolerance the
  tests hold it to is in docs/shards.md.
- ``lossless``: FFV1 ``bgra`` in Matroska; decodes to the exact input bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import av
import numpy as np


@dataclass(frozen=True)
class VideoCodec:
    """How one kind of video column is encoded.

    Attributes:
        name: the value stored in the ``video_codec`` column.
        encoder: FFmpeg encoder.
        pix_fmt: pixel format given to the encoder.
        container: FFmpeg muxer.
        lossless: decoded frames equal the input exactly.
        options: encoder options.
    """

    name: str
    encoder: str
    pix_fmt: str
    container: str
    lossless: bool
    options: dict = field(default_factory=dict)


#: Default constant-quality level of the lossy codec (VP9 crf, 0..63, lower is better).
DEFAULT_CRF = 20

CODECS = {
    "lossy": VideoCodec("vp9-yuva420p-webm", "libvpx-vp9", "yuva420p", "webm", False, {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}),
    "lossless": VideoCodec("ffv1-bgra-mkv", "ffv1", "bgra", "matroska", True),
}

#: Decoders that keep alpha, by the stream's codec name (FFmpeg's own vp9 decoder drops it).
_ALPHA_DECODERS = {"vp9": "libvpx-vp9"}


class VideoDecodeError(ValueError):
    """Video bytes that cannot be decoded; the message says why."""


def encode_rgba(frames: np.ndarray, codec: str = "lossy", crf: int = DEFAULT_CRF, fps: int = 24) -> bytes:
    """Encode frames to the bytes of a video file.

    Args:
        frames: uint8 [T, H, W, 4], straight alpha, sRGB.
        codec: "lossy" or "lossless" (see CODECS).
        crf: quality of the lossy codec (ignored by the lossless one).
        fps: frame rate written in the container (timing only; every frame is kept).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 4 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [T>0, H, W, 4], got {frames.dtype} {list(frames.shape)}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    spec = CODECS[codec]
    options = dict(spec.options)
    if not spec.lossless:
        if not 0 <= crf <= 63:
            raise ValueError(f"crf must be in 0..63, got {crf}")
        options["crf"] = str(crf)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=spec.container) as container:
        stream = container.add_stream(spec.encoder, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = spec.pix_fmt
        stream.options = options
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgba")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_rgba(data: bytes) -> np.ndarray:
    """Decode video bytes written by encode_rgba to uint8 [T, H, W, 4] (straight alpha, sRGB).

    Raises VideoDecodeError when the bytes are not a decodable video.
    """
    frames = []
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            decoder_name = _ALPHA_DECODERS.get(stream.codec_context.name)
            if decoder_name is None:
                frames = [f.to_ndarray(format="rgba") for f in container.decode(stream)]
            else:
                decoder = av.CodecContext.create(decoder_name, "r")
                for packet in container.demux(stream):  # the last packet is the flush packet
                    frames.extend(f.to_ndarray(format="rgba") for f in decoder.decode(packet))
    except av.FFmpegError as exc:
        raise VideoDecodeError(f"cannot decode video ({exc})") from None
    if not frames:
        raise VideoDecodeError("video has no frames")
    return np.stack(frames)
