"""Video codecs of the shards: lossless round trip, lossy tolerance, errors."""

import numpy as np
import pytest

from d4d.shards.video import VideoDecodeError, decode_rgba, encode_rgba
from d4d.testing.shards_helpers import LOSSY_MAX_ALPHA_ERROR, LOSSY_MAX_ALPHA_MEAN_ERROR, LOSSY_MIN_PSNR_DB, ball_frame, premultiplied_psnr


def clip(size: int, hue: float, frames: int = 8) -> np.ndarray:
    return np.stack([ball_frame(size, t, 45.0 * i, hue) for i, t in enumerate(np.linspace(0, 1, frames))])


def test_lossless_round_trip_is_exact_including_alpha_and_hidden_colour():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(5, 24, 40, 4), dtype=np.uint8)  # noise: no codec can cheat
    decoded = decode_rgba(encode_rgba(frames, "lossless"))
    assert decoded.dtype == np.uint8 and decoded.shape == frames.shape
    np.testing.assert_array_equal(decoded, frames)


@pytest.mark.parametrize("hue", [0.0, 0.5, 0.9])
def test_lossy_keeps_alpha_within_documented_tolerance(hue):
    frames = clip(64, hue)
    data = encode_rgba(frames, "lossy")
    decoded = decode_rgba(data)
    assert decoded.shape == frames.shape
    assert premultiplied_psnr(decoded, frames) >= LOSSY_MIN_PSNR_DB
    alpha_error = np.abs(decoded[..., 3].astype(int) - frames[..., 3])
    assert alpha_error.mean() <= LOSSY_MAX_ALPHA_MEAN_ERROR
    assert alpha_error.max() <= LOSSY_MAX_ALPHA_ERROR
    # alpha really is carried: the transparent background decodes transparent, the object opaque
    assert decoded[..., 3][frames[..., 3] == 0].mean() < 1.0 and decoded[..., 3][frames[..., 3] == 255].mean() > 254.0
    assert len(data) < frames.nbytes / 10


def test_lossy_quality_follows_crf():
    frames = clip(64, 0.3)
    fine, coarse = encode_rgba(frames, "lossy", crf=4), encode_rgba(frames, "lossy", crf=60)
    assert len(coarse) < len(fine)
    assert premultiplied_psnr(decode_rgba(fine), frames) > premultiplied_psnr(decode_rgba(coarse), frames)


def test_odd_sizes_and_single_frames_encode():
    frames = clip(33, 0.1, frames=1)[:, :, :29]
    assert decode_rgba(encode_rgba(frames, "lossy")).shape == (1, 33, 29, 4)
    assert decode_rgba(encode_rgba(frames, "lossless")).shape == (1, 33, 29, 4)


@pytest.mark.parametrize(
    "frames, codec, message",
    [
        (np.zeros((2, 8, 8, 3), np.uint8), "lossy", "uint8 \\[T>0, H, W, 4\\]"),
        (np.zeros((2, 8, 8, 4), np.float32), "lossy", "uint8"),
        (np.zeros((0, 8, 8, 4), np.uint8), "lossless", "T>0"),
        (np.zeros((2, 8, 8, 4), np.uint8), "h264", "codec must be one of"),
    ],
)
def test_encode_rejects_bad_input(frames, codec, message):
    with pytest.raises(ValueError, match=message):
        encode_rgba(frames, codec)


def test_decode_rejects_garbage_and_truncation():
    with pytest.raises(VideoDecodeError):
        decode_rgba(b"not a video at all" * 10)
    data = encode_rgba(clip(32, 0.2), "lossless")
    with pytest.raises(VideoDecodeError):
        decode_rgba(data[:200])
