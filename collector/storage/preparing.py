"""Work on samples as they arrive, before any episode needs them: colour encoded, image chunks
compressed.

The recorder holds the last ``recording.pre_roll_s`` seconds of samples between episodes; a Start
adopts them into the new episode. Encoded only then, they were a burst (3 s of two cameras:
180 frames, ~0.6 CPU-seconds) that delayed every sample behind it and that a recorder killed
in the first seconds of an episode lost (docs/reliability.md, "Known limits"). So each
video-stored colour field gets one encoder for the life of the recorder, fed every frame as it
is received, in episodes or not (:class:`SamplePreparer`); the episode writer takes the packets
of the frames routed to it (:mod:`collector.storage.packet_feed`).

An episode's packets must start at a keyframe. The continuous encoders place keyframes on
capture time: the first frame at or after each multiple of ``recording.video_gop_s`` on the
host clock, the same instants for every camera. A pre-roll begins on one of them when enough
is held (collector.recording.recorder), so its episode takes every packet; one that starts
between two (back to back with the previous episode) encodes its frames up to the next itself
(collector.storage.packet_feed).

Image fields stored raw (depth, and colour when not encoded) are one chunk per frame, compressed
by HDF5's filters as the writer writes them. For frames held for the pre-roll the compression
is done on arrival instead (:class:`ChunkCompressor`, on the recorder's writer thread, which
is otherwise idle between episodes and is the one thread that runs the compression filters, so
they never race), and the writer stores the prepared bytes with ``write_direct_chunk``
(:mod:`collector.storage.chunks`: byte for byte what HDF5 would store).

Costs: between episodes the recorder does what it does while recording, encoding and
compressing every frame it holds: measured with 2 simulated 640x480 RGB-D cameras and a 1 kHz
glove, 0.61-0.69 CPU-seconds per second against 0.18 without a pre-roll (a fine-tune of the WAM
trainer between episodes gets that much less). Only while ``recording.pre_roll_s`` is above 0:
without a pre-roll an episode's frames arrive as they are captured and its own encoder keeps up.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, NamedTuple

import numpy as np

from collector.storage.chunks import ChunkEncoder, chunk_encoder_for
from collector.storage.crc import checksum_options
from collector.storage.encoder_thread import EncoderThread
from collector.storage.schema import field_encodings
from collector.storage.video import VideoCodecError, VideoEncoder, is_video
from collector.wire.protocol import RAW, Sample
from collector.wire.streams import StreamSpec

log = logging.getLogger(__name__)


class PreparedChunk(NamedTuple):
    """A frame's chunk as a dataset with ``pipeline`` (filters and their parameters) stores it."""

    pipeline: tuple
    data: bytes


def chunked_frames(spec: StreamSpec, encodings: dict[str, str]) -> list[str]:
    """The fields of ``spec`` the episode writer stores one frame per chunk: raw images of
    colour and depth streams (collector.storage.writer)."""
    return [f.name for f in spec.fields
            if spec.kind in ("color", "depth") and encodings.get(f.name) == RAW and len(f.shape) >= 2]


def chunk_options(compression: str, checksums: bool, dtype: Any) -> dict:
    """h5py ``create_dataset`` keywords of a raw field's filters: compression, then Fletcher-32."""
    from collector.storage.writer import compression_options  # the writer's choice, said once

    return {**compression_options(compression, dtype), **checksum_options(checksums)}


class ChunkCompressor:
    """Compresses frames held for a pre-roll into the chunks their episode file will store.

    Used on the recorder's writer thread only (see the module docstring): :meth:`compress`
    fills a sample's ``prepared`` dict, which the episode writer reads when the sample is routed.
    """

    def __init__(self, compression: str, checksums: bool) -> None:
        self.compression, self.checksums = compression, checksums
        self._encoders: dict[tuple, ChunkEncoder | None] = {}
        self.failures = 0

    def compress(self, sample: Sample, fields: list[str], prepared: dict[str, Any]) -> None:
        for name in fields:
            array = sample.fields.get(name)
            if not isinstance(array, np.ndarray) or sample.encodings.get(name, RAW) != RAW:
                continue
            key = (array.shape, array.dtype.str)
            if key not in self._encoders:
                if not self.compression or self.compression == "none":
                    self._encoders[key] = None  # Fletcher-32 alone: HDF5 sums it as fast
                else:
                    self._encoders[key] = chunk_encoder_for(
                        array.shape, array.dtype, chunk_options(self.compression, self.checksums,
                                                                array.dtype))
            encoder = self._encoders[key]
            if encoder is None:
                continue
            try:
                prepared[name] = PreparedChunk(encoder.pipeline, encoder(array))
            except (ValueError, RuntimeError) as exc:  # written plainly, compressed by HDF5
                self.failures += 1
                if self.failures <= 3:
                    log.warning("could not compress a frame of %s/%s ahead: %s", sample.stream, name, exc)


class _Continuous:
    """One field's continuous encoder and where its keyframe grid stands."""

    def __init__(self, thread: EncoderThread, width: int, height: int, gop_ns: int) -> None:
        self.thread, self.shape, self.gop_ns = thread, (height, width, 3), gop_ns
        self.last_slot: int | None = None  # grid slot of the last frame submitted

    def keyframe(self, t_host_ns: int) -> bool:
        slot = t_host_ns // self.gop_ns
        first = self.last_slot is None or slot != self.last_slot
        self.last_slot = slot
        return first


class SamplePreparer:
    """Encodes every video-stored colour field of every sample it is given, on one thread per
    field, and has ``compress`` compress the chunked fields of held ones; :meth:`prepare`
    returns what it prepared for the episode writer (``EpisodeWriter.append(..., prepared=...)``).

    Settings are the recording's: ``color_encoding``, ``stream_encodings`` and the
    ``video_*`` options, as the episode writer gets them. Call from one thread (the
    recorder's receiver); :meth:`close` ends the encoders.
    """

    def __init__(self, *, color_encoding: str, stream_encodings: dict[str, str] | None = None,
                 video_encoder: str = "", video_crf: float = 0, video_gop_s: float = 1.0,
                 compress: Callable[[Sample, list[str], dict], None] | None = None) -> None:
        self.color_encoding, self.stream_encodings = color_encoding, dict(stream_encodings or {})
        #: Queues the compression of a held sample's chunked fields (the writer thread's
        #: :class:`ChunkCompressor`): called with the sample, its fields and its prepared dict.
        self._compress = compress
        self._chunked: dict[str, list[str]] = {}
        self._video: dict[str, list[tuple[str, str]]] = {}
        self.video_options = dict(encoder=video_encoder, crf=float(video_crf), gop_s=float(video_gop_s))
        self._encoders: dict[tuple[str, str], _Continuous | None] = {}
        self._specs: dict[str, StreamSpec] = {}
        self.skipped = 0  # frames not prepared (encoder busy or failed): their episode encodes them

    def prepare(self, sample: Sample, spec: StreamSpec, held: bool = False) -> dict[str, Any] | None:
        """Queue the sample's video-stored fields for encoding and, if it is ``held`` for a
        pre-roll, its chunked fields for compression; the dict that receives what is prepared
        (tickets at once, chunks later), or ``None`` when nothing is. Never blocks: a frame the
        encoder has no room for is left to the episode's own encoder."""
        known = self._specs.get(spec.name)
        if known is not spec and known != spec:
            self._forget(spec.name)  # (re)declared: encoders follow the new spec
            self._specs[spec.name] = spec
            encodings = field_encodings(spec, self.color_encoding, self.stream_encodings)
            self._chunked[spec.name] = chunked_frames(spec, encodings)
            self._video[spec.name] = [(n, e) for n, e in encodings.items() if is_video(e)]
        chunked, video = self._chunked[spec.name], self._video[spec.name]
        if not video and not (held and chunked):
            return None  # most samples (the glove's): nothing to do
        prepared: dict[str, Any] = {}  # tickets now, compressed chunks later
        if held and chunked and self._compress is not None:
            self._compress(sample, chunked, prepared)  # filled in on the writer thread
        for name, encoding in video:
            continuous = self._continuous(spec, name, encoding)
            array = sample.fields.get(name)
            if continuous is None or not isinstance(array, np.ndarray) \
                    or sample.encodings.get(name, RAW) != RAW or array.dtype != np.uint8 \
                    or array.shape != continuous.shape:
                continue  # not what the spec declares: the writer rejects it with its reason
            if array.flags.writeable:  # a producer may reuse the buffer (received ones are not)
                array = array.copy()
            try:
                ticket = continuous.thread.submit(array, continuous.keyframe(sample.t_host_ns),
                                                  block=False)
            except VideoCodecError as exc:
                log.warning("continuous encoder of %s/%s failed (%s); episodes encode its frames "
                            "themselves", spec.name, name, exc)
                self._encoders[spec.name, name] = None
                continue
            if ticket is None:
                self.skipped += 1
                continuous.last_slot = None  # the next frame it takes must start a new run
                continue
            prepared[name] = ticket
        return prepared if prepared or (held and chunked) else None

    def keyframe_grid_ns(self, streams: list[str]) -> int | None:
        """The spacing of the continuous encoders' keyframes on capture time (they fall on its
        multiples) when one of ``streams`` is encoded continuously, else ``None``: an episode
        whose pre-roll begins on a multiple takes every packet from them, encoding none itself."""
        active = any(c is not None and s in streams for (s, _), c in list(self._encoders.items()))
        return max(1, int(self.video_options["gop_s"] * 1e9)) if active else None

    def _continuous(self, spec: StreamSpec, name: str, encoding: str) -> _Continuous | None:
        key = (spec.name, name)
        if key not in self._encoders:
            fs = next(f for f in spec.fields if f.name == name)
            height, width = fs.shape[0], fs.shape[1]

            def make() -> VideoEncoder:
                return VideoEncoder(encoding, width, height, spec.rate_hz, keyframes_by_caller=True,
                                    **self.video_options)
            try:
                thread = EncoderThread(make(), f"continuous {spec.name}", reopen=make)
            except VideoCodecError as exc:
                log.warning("no continuous encoder for %s/%s (%s)", spec.name, name, exc)
                self._encoders[key] = None
            else:
                self._encoders[key] = _Continuous(thread, width, height,
                                                  max(1, int(self.video_options["gop_s"] * 1e9)))
        return self._encoders[key]

    def _forget(self, stream: str) -> None:
        for key in [k for k in self._encoders if k[0] == stream]:
            continuous = self._encoders.pop(key)
            if continuous is not None:
                continuous.thread.close()

    def close(self) -> None:
        """Drain and end every encoder: tickets still waiting complete by themselves."""
        for stream in list(self._specs):
            self._forget(stream)
        self._specs.clear()

    def status(self) -> dict[str, Any]:
        """Fields encoded continuously, and frames left to episodes' own encoders."""
        return {"fields": sorted(f"{s}/{f}" for (s, f), c in self._encoders.items() if c),
                "skipped": self.skipped}
