"""Image codecs for episode files: one JPEG per color frame, through OpenCV.

Color frames travel and are stored as RGB; OpenCV encodes and decodes BGR, so every function here
swaps channels at the boundary and callers never see BGR.
"""

from __future__ import annotations

import cv2
import numpy as np

JPEG_SOI = b"\xff\xd8"

# Start-of-frame markers that carry the image size (baseline, extended, progressive, lossless...);
# 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class CodecError(ValueError):
    """Bytes that are not a decodable image, or an array that cannot be encoded."""


def is_color_image(dtype: str | np.dtype, shape: tuple[int, ...]) -> bool:
    """Whether a field of this dtype and shape is an RGB image the JPEG codec can take."""
    return np.dtype(dtype) == np.uint8 and len(shape) == 3 and shape[2] == 3


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    """Encode an (H, W, 3) uint8 RGB frame; return the JPEG as a 1-D uint8 array."""
    if not is_color_image(rgb.dtype, rgb.shape):
        raise CodecError(f"JPEG needs an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CodecError("OpenCV failed to encode the frame as JPEG")
    return buffer.reshape(-1)


def decode_jpeg(data: np.ndarray | bytes) -> np.ndarray:
    """Decode one JPEG into an (H, W, 3) uint8 RGB array."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) \
        else np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise CodecError(f"{buffer.size} bytes are not a decodable JPEG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def jpeg_shape(data: np.ndarray | bytes) -> tuple[int, int, int]:
    """The (H, W, channels) a JPEG declares, read from its frame header without decoding.

    Lets the writer check an already-encoded frame against its stream's spec at the cost of a few
    header bytes instead of a full decode.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise CodecError(f"a JPEG must be 1-D uint8 bytes, got {data.dtype.str} {data.shape}")
        raw = data.tobytes()
    else:
        raw = bytes(data)
    if not raw.startswith(JPEG_SOI):
        raise CodecError("not a JPEG (no start-of-image marker)")
    i = 2
    while i + 4 <= len(raw):
        if raw[i] != 0xFF:
            raise CodecError(f"corrupt JPEG header at byte {i}")
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = int.from_bytes(raw[i + 2:i + 4], "big")
        if marker in _SOF_MARKERS:
            if i + 10 > len(raw):
                break
            height = int.from_bytes(raw[i + 5:i + 7], "big")
            width = int.from_bytes(raw[i + 7:i + 9], "big")
            return height, width, raw[i + 9]
        if marker == 0xDA:  # start of scan before any frame header
            break
        i += 2 + length
    raise CodecError("JPEG has no frame header")
