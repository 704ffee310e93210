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

from d4d.rendering.contract import MAX_DECODED_BYTES, MAX_IMAGE_SIDE


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
        stream: FFmpeg's name of the stream's codec as a decoder reads it back ("vp9", "ffv1").
    """

    name: str
    encoder: str
    pix_fmt: str
    container: str
    lossless: bool
    options: dict = field(default_factory=dict)
    stream: str = ""


#: Default constant-quality level of the lossy codec (VP9 crf, 0..63, lower is better).
DEFAULT_CRF = 20

CODECS = {
    "lossy": VideoCodec("vp9-yuva420p-webm", "libvpx-vp9", "yuva420p", "webm", False, {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}, "vp9"),
    "lossless": VideoCodec("ffv1-bgra-mkv", "ffv1", "bgra", "matroska", True, stream="ffv1"),
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


def _check_frame(index: int, frame: av.VideoFrame, height: int | None, width: int | None, pixels: int) -> None:
    """Refuse a decoded frame whose size is not the expected one (or, with none, over ``pixels``)."""
    if height is not None and (frame.height, frame.width) != (height, width):
        raise VideoDecodeError(f"frame {index} is {frame.width}x{frame.height}, expected {width}x{height}")
    if frame.width * frame.height > pixels:
        raise VideoDecodeError(f"frame {index} is {frame.width}x{frame.height}, over the decode budget")


def decode_rgba(
    data: bytes,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    codec: str | None = None,
    max_bytes: int = MAX_DECODED_BYTES,
) -> np.ndarray:
    """Decode video bytes written by encode_rgba to uint8 [T, H, W, 4] (straight alpha, sRGB),
    within a budget enforced while decoding (docs/security.md, "Hostile numbers").

    Args:
        data: the video file's bytes.
        frames: the frame count the caller expects (a shard row's ``num_frames``): decoding
            stops at the first frame past it, and a video with fewer is refused too.
        size: (height, width) expected: checked on the stream's header before any frame is
            decoded and on every frame, and the decoder refuses larger frames (FFmpeg's
            ``max_pixels``) before it allocates them.
        codec: a ``video_codec`` value (a name in CODECS): the stream must be that codec in a
            Matroska/WebM container; None accepts any container and codec FFmpeg decodes.
        max_bytes: bound on the decoded frames, T * H * W * 4 bytes, checked before each frame
            is converted (default MAX_DECODED_BYTES, 1 GiB).

    Raises VideoDecodeError naming the reason when the bytes are not a decodable video or break
    one of the bounds above.
    """
    height, width = size if size is not None else (None, None)
    if frames is not None and frames < 1:
        raise VideoDecodeError(f"expected frame count {frames} is not positive")
    if size is not None and not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise VideoDecodeError(f"expected size {width}x{height} is not in 1..{MAX_IMAGE_SIDE}")
    pixels = height * width if size is not None else min(max_bytes // 4, MAX_IMAGE_SIDE**2)
    if frames is not None and size is not None and frames * pixels * 4 > max_bytes:
        raise VideoDecodeError(f"{frames} frames of {width}x{height} exceed the decode budget of {max_bytes / 2**30:.2f} GiB")
    spec = None
    if codec is not None:
        spec = next((c for c in CODECS.values() if c.name == codec), None)
        if spec is None:
            raise VideoDecodeError(f"unknown video codec {codec!r} (known: {', '.join(c.name for c in CODECS.values())})")
    # Known count and size: one array filled in place (untouched pages cost nothing); else a list.
    out = np.empty((frames, height, width, 4), np.uint8) if frames is not None and size is not None else None
    decoded: list[np.ndarray] = []
    count = 0
    try:
        with av.open(io.BytesIO(data), format="matroska" if spec is not None else None) as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            context = stream.codec_context
            if spec is not None and context.name != spec.stream:
                raise VideoDecodeError(f"stream is {context.name}, the row's codec {codec} is {spec.stream}")
            if size is not None and (context.height, context.width) != (height, width):
                raise VideoDecodeError(f"stream is {context.width}x{context.height}, expected {width}x{height}")
            decoder_name = _ALPHA_DECODERS.get(context.name)
            decoder = context if decoder_name is None else av.CodecContext.create(decoder_name, "r")
            # Before the decoder opens (on its first packet). FFmpeg applies it to the width padded
            # to its stride alignment, hence the margin; _check_frame holds each frame exactly.
            decoder.options = {"max_pixels": str((width + 128) * (height + 128) if size is not None else pixels)}
            for packet in container.demux(stream):  # the last packet is the flush packet
                for frame in decoder.decode(packet):
                    if frames is not None and count >= frames:
                        raise VideoDecodeError(f"has more than {frames} frames (the expected count); decoding stopped")
                    _check_frame(count, frame, height, width, pixels)
                    if (count + 1) * frame.width * frame.height * 4 > max_bytes:
                        raise VideoDecodeError(f"decoded frames exceed the decode budget of {max_bytes / 2**30:.2f} GiB; decoding stopped")
                    rgba = frame.to_ndarray(format="rgba")
                    if out is not None:
                        out[count] = rgba
                    else:
                        decoded.append(rgba)
                    count += 1
    except VideoDecodeError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoDecodeError(f"cannot decode video ({exc})") from None
    if count == 0:
        raise VideoDecodeError("video has no frames")
    if frames is not None and count != frames:
        raise VideoDecodeError(f"has {count} frames, expected {frames}")
    return out if out is not None else np.stack(decoded)
