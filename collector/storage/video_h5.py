"""Video-stored fields in HDF5 episode files: their datasets, appending packets, reading frames.

Layout (docs/episode-format.md, "Video color frames"): ``<field>.video`` holds every packet's
bytes end to end, ``<field>.offsets`` where each ends, ``<field>.pts`` each packet's
presentation timestamp (its frame index), ``<field>.key`` 1 for keyframes, and, with
checksums, ``<field>.crc32`` per packet. All are appended in SWMR mode like any other dataset,
so an interrupted file keeps every packet up to the writer's last flush.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from collector.storage.crc import CRC_SUFFIX, frame_crc32
from collector.storage.layout import KEY_SUFFIX, OFFSETS_SUFFIX, PTS_SUFFIX, VIDEO_SUFFIX
from collector.storage.video import SOFTWARE_ENCODERS, EncodedPacket, VideoEncoder, VideoFrameReader

#: Bytes per chunk of a packet dataset: about a second of 640x480 H.264 at the default quality.
PACKET_CHUNK_BYTES = 256 << 10


def create_video_datasets(group: h5py.Group, field: str, encoder: VideoEncoder,
                          attrs: dict[str, Any], rows: int, check: dict) -> None:
    """Create the datasets of one video-stored field (before the file goes SWMR)."""
    data = group.create_dataset(field + VIDEO_SUFFIX, (0,), dtype=np.uint8, maxshape=(None,),
                                chunks=(PACKET_CHUNK_BYTES,), **check)
    data.attrs.update(attrs, **encoder.attrs)
    offsets = group.create_dataset(field + OFFSETS_SUFFIX, (0,), dtype=np.uint64, maxshape=(None,),
                                   chunks=(rows,), **check)
    offsets.attrs.update(layout="end", unit="byte")
    group.create_dataset(field + PTS_SUFFIX, (0,), dtype=np.int64, maxshape=(None,),
                         chunks=(rows,), **check)
    group.create_dataset(field + KEY_SUFFIX, (0,), dtype=np.uint8, maxshape=(None,),
                         chunks=(rows,), **check)
    if check:
        group.create_dataset(field + CRC_SUFFIX, (0,), dtype=np.uint32, maxshape=(None,),
                             chunks=(rows,), **check)


def append_packets(group: h5py.Group, field: str, packets: list[EncodedPacket]) -> None:
    """Append ``packets`` (in frame order) to the field's datasets.

    The offsets are written after the bytes: a kill between the two leaves bytes no offset
    points to, which readers ignore."""
    if not packets:
        return
    data, offsets = group[field + VIDEO_SUFFIX], group[field + OFFSETS_SUFFIX]
    start, base = offsets.shape[0], data.shape[0]
    ends = base + np.cumsum([p.data.size for p in packets], dtype=np.uint64)
    data.resize((int(ends[-1]),))
    data[base:] = np.concatenate([p.data for p in packets])
    columns = {PTS_SUFFIX: np.array([p.pts for p in packets], np.int64),
               KEY_SUFFIX: np.array([p.keyframe for p in packets], np.uint8)}
    if field + CRC_SUFFIX in group:
        columns[CRC_SUFFIX] = frame_crc32([p.data for p in packets])
    for suffix, values in columns.items():
        group[field + suffix].resize((start + len(packets),))
        group[field + suffix][start:] = values
    offsets.resize((start + len(packets),))
    offsets[start:] = ends


def video_frame_reader(group: h5py.Group, field: str, count: int,
                       shape: tuple[int, ...]) -> VideoFrameReader:
    """Random access to the first ``count`` frames of a video-stored field."""
    data = group[field + VIDEO_SUFFIX]
    bounds = np.concatenate([[0], group[field + OFFSETS_SUFFIX][:count].astype(np.int64)])
    keyframes = np.flatnonzero(group[field + KEY_SUFFIX][:count])
    attrs = data.attrs

    def read_packets(lo: int, hi: int) -> list[bytes]:
        blob = data[int(bounds[lo]):int(bounds[hi])].tobytes()
        base = int(bounds[lo])
        return [blob[int(bounds[i]) - base:int(bounds[i + 1]) - base] for i in range(lo, hi)]

    return VideoFrameReader(str(attrs["codec"]), bytes.fromhex(str(attrs.get("extradata", ""))),
                            shape, count, keyframes, read_packets)


def remux_mp4(group: h5py.Group, field: str, count: int, path: str | Path, start: int = 0,
              stop: int | None = None) -> int:
    """Copy the packets of frames ``start..stop-1`` into an mp4 file without re-encoding (what a
    LeRobot export needs when the codec and GOP suit it); returns the frames written.

    ``start`` must be a keyframe (``ValueError`` otherwise: a cut elsewhere needs re-encoding). The mp4's timestamps count from 0 at the stored rate; every player and
    LeRobot's pyav/torchcodec readers decode it to the frames ``frames()`` returns."""
    import av

    stop = count if stop is None else min(stop, count)
    keys = group[field + KEY_SUFFIX][:count]
    if not 0 <= start < stop or not keys[start]:
        raise ValueError(f"frames {start}..{stop - 1} of '{field}' do not start on a "
                              "keyframe: copying packets needs one (re-encode instead)")
    attrs = dict(group[field + VIDEO_SUFFIX].attrs)
    bounds = np.concatenate([[0], group[field + OFFSETS_SUFFIX][:stop].astype(np.int64)])
    blob = group[field + VIDEO_SUFFIX][int(bounds[start]):int(bounds[stop])].tobytes()
    base, rate = int(bounds[start]), 1 / Fraction(str(attrs["time_base"]))
    with av.open(str(path), "w") as container:
        # The stream needs an encoder's name to exist; it never encodes a frame.
        stream = container.add_stream(SOFTWARE_ENCODERS[str(attrs["codec"])], rate=rate)
        stream.width, stream.height, stream.pix_fmt = int(attrs["width"]), int(attrs["height"]), "yuv420p"
        stream.time_base = 1 / rate
        if attrs.get("extradata"):
            stream.codec_context.extradata = bytes.fromhex(str(attrs["extradata"]))
        for i in range(start, stop):
            packet = av.Packet(blob[int(bounds[i]) - base:int(bounds[i + 1]) - base])
            packet.pts = packet.dts = i - start
            packet.time_base, packet.stream, packet.is_keyframe = stream.time_base, stream, bool(keys[i])
            container.mux(packet)
    return stop - start
