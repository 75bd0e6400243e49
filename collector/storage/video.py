"""Colour as video inside episode files: encoding while recording, random access when reading.

A video-stored field (``recording.color_encoding = "h264" | "hevc" | "av1"``) keeps one encoded
packet per frame, in frame order: the encoders run without frame reordering (no B-frames, low
delay), so packet ``i`` is frame ``i`` and its presentation timestamp is ``i``. Every
``gop`` frames (``recording.video_gop_s``, default 1 s) is a keyframe that needs no earlier
packet, so a reader seeks to the keyframe at or before a frame and decodes forward
(docs/episode-format.md, "Video color frames"). Encoding happens in the episode writer, on a
thread per stream (:mod:`collector.storage.encoder_thread`), never on the receive path.

Codecs come from PyAV's bundled FFmpeg; hardware encoders (NVENC, Quick Sync) are used when
chosen (``recording.video_encoder``) and present.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from collector.storage.codecs import CodecError
from collector.storage.layout import VIDEO_ENCODINGS

# SVT-AV1 prints its banner to stderr unless told otherwise (read when PyAV's FFmpeg loads it);
# errors still come through. PyAV itself is imported where used: checking options needs no FFmpeg.
os.environ.setdefault("SVT_LOG", "1")

log = logging.getLogger(__name__)


@contextmanager
def scheduling_kept() -> Iterator[None]:
    """Give the calling thread back its scheduling policy after the block. SVT-AV1, run as root,
    switches the thread that starts an encoder to real-time ``SCHED_FIFO`` (measured here:
    policy 0 before an AV1 encode, 1 after): the recorder's writer thread, an exporting process
    and every process either forks later (DataLoader workers) would then preempt the rest of the
    machine, capture nodes and GUI included."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux: nothing to keep
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)

#: The software encoder of each codec (always in PyAV's wheels).
SOFTWARE_ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
#: Hardware encoders tried, in order, for ``video_encoder = "hardware"``. VAAPI is left out: it
#: takes frames in GPU surfaces only, which would need a filter graph of its own.
HARDWARE_ENCODERS = {"h264": ("h264_nvenc", "h264_qsv"), "hevc": ("hevc_nvenc", "hevc_qsv"),
                     "av1": ("av1_nvenc", "av1_qsv")}
#: Decoders tried, in order, for each codec.
DECODERS = {"h264": ("h264",), "hevc": ("hevc",), "av1": ("libdav1d", "av1")}
#: Constant-quality level per codec when ``video_crf`` is 0, chosen with benchmarks/video_storage.py
#: to match the RGB PSNR/SSIM of LeRobot's default AV1 export (CRF 30, GOP 2) on the same frames
#: (docs/episode-format.md has the table).
DEFAULT_CRF = {"h264": 18.5, "hevc": 20, "av1": 24}
#: Quality ranges of the encoders' constant-quality modes.
CRF_RANGE = {"h264": (0, 51), "hevc": (0, 51), "av1": (1, 63)}
#: An encoder whose keyframes its caller places still makes one after this many GOPs without.
MAX_KEYINT_GOPS = 4
#: Decoded frames a reader keeps (at most this many bytes): a GOP of 640x480 at 30 fps is 27 MB.
CACHE_BYTES = 96 << 20


class VideoCodecError(CodecError):
    """A video encoder that cannot be used, or packets that do not decode (readers report an
    episode with such packets as damaged, like an undecodable JPEG)."""


def is_video(encoding: str) -> bool:
    """Whether ``encoding`` stores frames as video packets."""
    return encoding in VIDEO_ENCODINGS


def software_encoder(codec: str) -> str:
    """The software encoder of ``codec``; ``VideoCodecError`` for an unknown codec."""
    if codec not in SOFTWARE_ENCODERS:
        raise VideoCodecError(f"unknown video codec {codec!r} (known: {', '.join(VIDEO_ENCODINGS)})")
    return SOFTWARE_ENCODERS[codec]


def encoder_codec(encoder: str) -> str | None:
    """The codec an FFmpeg encoder name writes (``"h264_nvenc"`` -> ``"h264"``), or ``None``."""
    for codec in VIDEO_ENCODINGS:
        if encoder == SOFTWARE_ENCODERS[codec] or encoder in HARDWARE_ENCODERS[codec]:
            return codec
    return None


def check_video_options(codec: str, encoder: str, crf: float, gop_s: float) -> None:
    """Raise ``ValueError`` for settings no episode could be encoded with."""
    software_encoder(codec)
    if encoder not in ("", "hardware") and encoder_codec(encoder) != codec:
        raise VideoCodecError(f"video_encoder {encoder!r} does not write {codec} (use '', "
                              f"'hardware' or one of {SOFTWARE_ENCODERS[codec]}, "
                              f"{', '.join(HARDWARE_ENCODERS[codec])})")
    low, high = CRF_RANGE[codec]
    if crf and not low <= crf <= high:
        raise VideoCodecError(f"video_crf for {codec} must be 0 (the default, "
                              f"{DEFAULT_CRF[codec]}) or {low}..{high}, got {crf}")
    if not 0.1 <= gop_s <= 10:
        raise VideoCodecError(f"video_gop_s must be in [0.1, 10] s, got {gop_s}")


def check_encoder_opens(codecs: Iterable[str], encoder: str) -> None:
    """Open the chosen ``encoder`` once for each video codec in ``codecs`` (on a small frame),
    before anything records: a named encoder that this machine cannot run (``h264_nvenc``
    without an NVIDIA encoder, ``hevc_qsv`` without Quick Sync) is refused at start with what
    FFmpeg said, not by the first episode. ``""`` (software) and ``"hardware"`` (software when
    no hardware encoder opens) always work and are not opened here.

    Raises:
        VideoCodecError: naming the encoder, why it did not open and what to choose instead.
    """
    if encoder in ("", "hardware"):
        return
    for codec in sorted({c for c in codecs if is_video(c)}):
        try:
            VideoEncoder(codec, 320, 240, 30.0, encoder=encoder).finish()  # NVENC refuses tiny frames
        except VideoCodecError as exc:
            raise VideoCodecError(
                f"recording.video_encoder {encoder!r} cannot encode {codec} on this machine "
                f"({exc}); choose '' (the software encoder, {SOFTWARE_ENCODERS[codec]}) or "
                "'hardware' (a hardware encoder when one opens, else software)") from None


def _encoder_options(encoder: str, crf: float, gop: int, keyint: int) -> dict[str, str]:
    # min-keyint: x265 ignores a forced keyframe closer than it to the last one; when the
    # caller places keyframes (keyint > gop) every one it asks for must be honoured.
    min_keyint = gop if keyint == gop else 1
    # No reordering anywhere (packet i is frame i), a keyframe at least every ``keyint`` frames
    # (the fixed GOP, or the caller's own keyframes: see VideoEncoder), and as little look-ahead
    # as the encoder allows: what a killed recorder had not yet received from the encoder is lost.
    # x264 "ultrafast": on camera-noisy frames it is smaller at equal PSNR/SSIM than "veryfast"
    # (which spends bits on the noise) at under half the CPU (benchmarks/video_storage.py).
    if encoder == "libx264":
        # "zerolatency": x264 otherwise holds one frame back (measured: the same bytes and PSNR).
        return {"preset": "ultrafast", "tune": "zerolatency", "crf": f"{crf:g}", "bframes": "0",
                "rc-lookahead": "0",
                "sc_threshold": "0", "x264-params": f"keyint={keyint}:min-keyint={min_keyint}:scenecut=0"}
    if encoder == "libx265":
        return {"preset": "ultrafast", "crf": f"{crf:g}",
                "x265-params": f"bframes=0:rc-lookahead=0:keyint={keyint}:min-keyint={min_keyint}:"
                               "scenecut=0:open-gop=0:log-level=error"}
    if encoder == "libsvtav1":
        return {"preset": "10", "crf": str(round(crf)),
                "svtav1-params": f"pred-struct=1:keyint={keyint}:scd=0:irefresh-type=2"}
    if encoder.endswith("_nvenc"):
        return {"preset": "p4", "rc": "vbr", "cq": str(round(crf)), "bf": "0", "delay": "0",
                "zerolatency": "1", "forced-idr": "1"}
    if encoder.endswith("_qsv"):
        return {"global_quality": str(round(crf)), "bf": "0", "look_ahead": "0", "async_depth": "1"}
    return {}


@dataclass(frozen=True)
class EncodedPacket:
    """One frame's packet: its bytes, presentation timestamp (the frame index) and whether it is
    a keyframe."""

    data: np.ndarray
    pts: int
    keyframe: bool


class VideoEncoder:
    """Encodes the RGB frames of one field, in order, into packets (one per frame).

    ``encoder``: ``""`` the codec's software encoder; ``"hardware"`` the first hardware encoder
    that opens, else the software one; or an FFmpeg encoder name (``"h264_nvenc"``), which must
    open. Call :meth:`finish` for the packets still inside the encoder.

    Keyframes come every ``gop`` frames (``gop_s`` of frames at ``rate_hz``) unless the caller
    places them: ``keyframes_by_caller`` makes :meth:`encode`'s ``keyframe`` decide, with one
    at least every :data:`MAX_KEYINT_GOPS` GOPs whatever the caller asks (the recorder's
    continuous encoders key on capture time: collector.recording.preparing).
    """

    def __init__(self, codec: str, width: int, height: int, rate_hz: float, *, encoder: str = "",
                 crf: float = 0, gop_s: float = 1.0, keyframes_by_caller: bool = False) -> None:
        import av

        check_video_options(codec, encoder, crf, gop_s)
        if width % 2 or height % 2:  # 4:2:0 halves both: the encoders refuse odd sizes
            raise VideoCodecError(f"{codec} needs an even width and height, got {width}x{height} "
                                  "(store this stream as jpeg or raw: recording.stream_encodings)")
        self.codec, self.width, self.height = codec, int(width), int(height)
        self.crf = float(crf or DEFAULT_CRF[codec])
        self.gop = max(1, round(gop_s * rate_hz))
        self.keyint = self.gop * (MAX_KEYINT_GOPS if keyframes_by_caller else 1)
        self.rate = Fraction(rate_hz).limit_denominator(1001) if rate_hz > 0 else Fraction(30)
        candidates = {"": [software_encoder(codec)],
                      "hardware": [*HARDWARE_ENCODERS[codec], software_encoder(codec)]}.get(
                          encoder, [encoder])
        errors = []
        for name in candidates:
            if name not in av.codecs_available:
                errors.append(f"{name}: not in this FFmpeg build")
                continue
            try:
                self._context = self._open(name)
            except (av.FFmpegError, ValueError, OSError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            self.encoder = name
            self.extradata = bytes(self._context.extradata or b"")
            break
        else:
            raise VideoCodecError(f"no {codec} encoder could be opened ({'; '.join(errors)})")
        if errors and encoder == "hardware":
            log.info("%s: no hardware encoder opened (%s); using %s", codec, "; ".join(errors),
                     self.encoder)
        self._next_pts = 0
        self._emitted = 0
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._rgb_frame: Any = None
        self._rgb_view: np.ndarray | None = None  # the RGB frame's pixels, written in place

    def _open(self, name: str) -> Any:
        import av

        context = av.CodecContext.create(name, "w")
        context.width, context.height = self.width, self.height
        context.pix_fmt = "yuv420p" if not name.endswith("_qsv") else "nv12"
        context.time_base = 1 / self.rate
        context.framerate = self.rate
        context.gop_size = self.keyint
        context.max_b_frames = 0
        # One thread: frame threads add one frame of delay each and fight the capture processes
        # for the two cores this has to run on.
        context.thread_count = 1
        context.options = _encoder_options(name, self.crf, self.gop, self.keyint)
        with scheduling_kept():
            context.open()
        return context

    @property
    def attrs(self) -> dict[str, Any]:
        """What a reader needs to decode the packets, stored on the field's packet dataset."""
        return {"codec": self.codec, "encoder": self.encoder, "crf": self.crf, "gop": self.gop,
                "pix_fmt": "yuv420p", "width": self.width, "height": self.height,
                "time_base": f"{self.rate.denominator}/{self.rate.numerator}",
                "extradata": self.extradata.hex()}

    def encode(self, rgb: np.ndarray, keyframe: bool | None = None) -> list[EncodedPacket]:
        """Encode the next frame (``(H, W, 3)`` uint8 RGB); the packets the encoder let out.
        ``keyframe``: make it one (``True``), or not unless the encoder must (``False``);
        ``None``: the fixed GOP decides. The first frame always is one."""
        import av

        # One reformatter for the stream keeps swscale's context: a new one per frame costs
        # about as much as the conversion itself (identical pixels either way). The RGB frame is
        # one buffer filled in place: a new frame per image would be a fresh 0.9 MB allocation,
        # page faults and all (0.20 -> 0.06 ms per 640x480 frame).
        if self._rgb_view is None or self._rgb_view.shape != rgb.shape:
            self._rgb_frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], "rgb24")
            plane = self._rgb_frame.planes[0]
            rows = np.frombuffer(plane, np.uint8).reshape(rgb.shape[0], plane.line_size)
            self._rgb_view = rows[:, :rgb.shape[1] * 3]
            self._rgb_view.shape = rgb.shape  # a view of the plane, never a copy (raises)
        np.copyto(self._rgb_view, rgb)
        frame = self._reformatter.reformat(self._rgb_frame, format=self._context.pix_fmt)
        frame.pts = self._next_pts
        if keyframe is None:
            keyframe = self._next_pts % self.gop == 0
        if keyframe or self._next_pts == 0:  # placed here, whatever the encoder thinks
            frame.pict_type = av.video.frame.PictureType.I
        self._next_pts += 1
        with scheduling_kept():
            return self._packets(self._context.encode(frame))

    def finish(self) -> list[EncodedPacket]:
        """Drain the encoder: the packets of every frame given so far that it still held."""
        if self._context is None:
            return []
        try:
            with scheduling_kept():
                return self._packets(self._context.encode(None))
        finally:
            self._context = None

    def _packets(self, packets: list) -> list[EncodedPacket]:
        out = []
        for packet in packets:
            pts = self._emitted if packet.pts is None else int(packet.pts)
            if pts != self._emitted:
                raise VideoCodecError(f"{self.encoder} reordered frames (packet pts {pts}, "
                                      f"expected {self._emitted}): not usable for episodes")
            self._emitted += 1
            out.append(EncodedPacket(np.frombuffer(bytes(packet), np.uint8), pts,
                                     bool(packet.is_keyframe)))
        return out

    @property
    def pending(self) -> int:
        """Frames given to the encoder whose packets have not come out yet."""
        return self._next_pts - self._emitted


def open_decoder(codec: str, extradata: bytes = b"") -> Any:
    """A PyAV decoder context for ``codec`` (the first decoder in :data:`DECODERS` present)."""
    import av

    for name in DECODERS.get(codec, ()):
        if name in av.codecs_available:
            context = av.CodecContext.create(name, "r")
            if extradata:
                context.extradata = extradata
            context.thread_count = 1  # no frame-thread delay: packet i gives frame i at once
            return context
    raise VideoCodecError(f"no decoder for {codec!r} in this FFmpeg build")


class VideoFrameReader:
    """Random access to the frames of one video-stored field.

    ``read_packets(lo, hi)`` returns the packets of frames ``lo..hi-1`` (bytes each);
    ``keyframes`` the frame indices that are keyframes, ascending. A frame is decoded from the
    keyframe at or before it; decoded frames are cached (:data:`CACHE_BYTES`, kept as the
    decoder's YUV pictures, converted to RGB only when asked for) and the decoder stays where it
    stopped, so reading forward frame by frame decodes each frame once and stepping back inside a
    GOP is a cache hit.
    """

    def __init__(self, codec: str, extradata: bytes, shape: tuple[int, ...], count: int,
                 keyframes: np.ndarray, read_packets: Callable[[int, int], list[bytes]]) -> None:
        self.codec, self.extradata, self.shape, self.count = codec, extradata, tuple(shape), count
        self.keyframes = np.asarray(keyframes, np.int64)
        self._read_packets = read_packets
        self._cache: OrderedDict[int, Any] = OrderedDict()
        # YUV 4:2:0 pictures: half the bytes of the RGB frame.
        self._cache_frames = max(2, CACHE_BYTES // max(1, int(np.prod(shape)) // 2))
        self._decoder: Any = None
        self._next = -1  # the frame the open decoder would produce next
        self.decoded = 0  # frames decoded so far (benchmarks read it)
        self._reformatter: Any = None  # swscale's context, kept from frame to frame

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as a new ``(H, W, 3)`` uint8 RGB array."""
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} out of range (0..{self.count - 1})")
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return self._rgb(index, cached)
        k = int(np.searchsorted(self.keyframes, index, side="right")) - 1
        if k < 0:
            raise VideoCodecError(f"frame {index} has no keyframe before it")
        start = int(self.keyframes[k])
        if self._decoder is None or not start <= self._next <= index:
            self._decoder, self._next = open_decoder(self.codec, self.extradata), start
        self._decode_until(index)
        return self._rgb(index, self._cache[index])

    def _rgb(self, index: int, picture: Any) -> np.ndarray:
        if self._reformatter is None:
            import av

            self._reformatter = av.video.reformatter.VideoReformatter()
        image = self._reformatter.reformat(picture, format="rgb24").to_ndarray()
        if image.shape != self.shape:
            raise VideoCodecError(f"frame {index} decodes to {image.shape}, the spec says {self.shape}")
        return image

    def frames(self, positions: np.ndarray) -> np.ndarray:
        """Frames at ``positions`` stacked; ascending runs decode once."""
        out = np.empty((len(positions), *self.shape), np.uint8)
        for k, i in enumerate(positions):
            out[k] = self.frame(int(i))
        return out

    def _decode_until(self, index: int) -> None:
        import av

        first = self._next
        packets = self._read_packets(first, index + 1)
        produced: list[Any] = []
        try:
            for packet_bytes in packets:
                produced += self._decoder.decode(av.Packet(packet_bytes))
            if len(produced) < len(packets):  # a decoder that holds frames back: drain it
                produced += self._decoder.decode(None)
                self._decoder = None
        except av.FFmpegError as exc:
            self._decoder = None
            raise VideoCodecError(f"frames {first}..{index}: undecodable packet ({exc})") from None
        for offset, picture in enumerate(produced[:len(packets)]):
            self._remember(first + offset, picture)
        self.decoded += len(produced)
        if index not in self._cache:
            raise VideoCodecError(f"frame {index} did not decode ({len(produced)} of "
                                  f"{len(packets)} packets gave frames)")
        self._next = index + 1

    def _remember(self, index: int, picture: Any) -> None:
        self._cache[index] = picture
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
