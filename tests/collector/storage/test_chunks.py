"""Chunks compressed outside HDF5 (collector.storage.chunks): byte for byte what the pipeline stores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import h5py
import hdf5plugin
import numpy as np
import pytest

from collector.storage.checksums import raw_frame_problems
from collector.storage.chunks import chunk_encoder, chunk_encoder_for, fletcher32, write_chunks
from collector.storage.crc import checksum_options
from collector.storage.layout import LIBVER
from collector.storage.writer import compression_options
from devices.sim_camera.render import Renderer, camera_for_view
from devices.sim_world import World

W, H = 640, 480


@pytest.fixture(scope="module")
def sim_frames() -> dict[str, np.ndarray]:
    """Two consecutive frames of the simulated camera, as the recorder gets them."""
    world = World(seed=0)
    renderer = Renderer(world, camera_for_view(0, W, H), 0, 0)
    pairs = [renderer.render(world.state_at(1000.0 + i / 30), i) for i in range(2)]
    return {"color": np.stack([c for c, _ in pairs]), "depth": np.stack([d for _, d in pairs])}


def _image_dataset(h5: h5py.File, name: str, frames: np.ndarray, options: dict) -> h5py.Dataset:
    """An image dataset as the episode writer creates it: one frame per chunk."""
    shape = frames.shape[1:]
    return h5.create_dataset(name, (0, *shape), dtype=frames.dtype, maxshape=(None, *shape),
                             chunks=(1, *shape), **options)


# (compression, kind): what the writer stores raw images with (uint16 depth always gets Blosc2).
PIPELINES = [("none", "depth"), ("zstd", "depth"), ("lz4", "color"), ("zstd", "color")]


@pytest.mark.parametrize("checksums", [False, True], ids=["plain", "fletcher32"])
@pytest.mark.parametrize("compression,kind", PIPELINES, ids=["none", "blosc2-depth", "lz4", "zstd"])
def test_prepared_chunks_are_the_bytes_hdf5_stores(tmp_path, sim_frames, compression, kind, checksums):
    frames = sim_frames[kind]
    options = {**compression_options(compression, frames.dtype), **checksum_options(checksums)}
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        written = _image_dataset(h5, "written", frames, options)
        written.resize(len(frames), axis=0)
        written[:] = frames
        prepared = _image_dataset(h5, "prepared", frames, options)
        encode = chunk_encoder(prepared)
        assert encode is not None
        write_chunks(prepared, 0, [encode(frame) for frame in frames])

        for row, frame in enumerate(frames):
            offset = (row, *(0,) * frame.ndim)
            mask, stored = prepared.id.read_direct_chunk(offset)
            assert (mask, stored) == written.id.read_direct_chunk(offset)  # so the ratio is the same
            np.testing.assert_array_equal(prepared[row], frame)


def test_encoding_beside_hdf5_compressing_gives_the_same_bytes(tmp_path, sim_frames):
    # As in the recorder: frames encoded on a thread of their own while HDF5 compresses with the
    # same plugin on the writing thread.
    depth = np.concatenate([sim_frames["depth"]] * 4)
    options = {**compression_options("zstd", depth.dtype), **checksum_options(True)}
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        written = _image_dataset(h5, "written", depth, options)
        encode = chunk_encoder(_image_dataset(h5, "prepared", depth, options))
        with ThreadPoolExecutor(1) as encoder_thread:
            chunks = encoder_thread.map(encode, depth)
            for row, frame in enumerate(depth):
                written.resize(row + 1, axis=0)
                written[row] = frame
            chunks = list(chunks)
        assert chunks == [written.id.read_direct_chunk((row, 0, 0))[1] for row in range(len(depth))]


def test_an_encoder_made_before_the_file_exists_fits_the_dataset_made_later(tmp_path, sim_frames):
    # The pre-roll is compressed between episodes, before the episode's file and datasets exist.
    depth = sim_frames["depth"]
    options = {**compression_options("zstd", depth.dtype), **checksum_options(True)}
    encode = chunk_encoder_for(depth.shape[1:], depth.dtype, options)
    chunks = [encode(frame) for frame in depth]
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        dataset = _image_dataset(h5, "depth", depth, options)
        unchecked = _image_dataset(h5, "unchecked", depth, compression_options("zstd", depth.dtype))
        assert encode.fits(dataset) and not encode.fits(unchecked)
        assert encode.pipeline == chunk_encoder(dataset).pipeline
        write_chunks(dataset, 0, chunks)
        np.testing.assert_array_equal(dataset[:], depth)


def test_fletcher32_matches_hdf5_on_odd_lengths_zeros_and_ones(tmp_path):
    # Fletcher-32 alone over 2091-byte chunks (odd, longer than one 512-word row of the sum):
    # noise, an all-zero chunk (checksum 0), all 0xff (sums that are multiples of 65535).
    noise = np.random.default_rng(0).integers(0, 256, (41, 51), dtype=np.uint8)
    frames = np.stack([noise, np.zeros_like(noise), np.full_like(noise, 255)])
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        written = _image_dataset(h5, "written", frames, checksum_options(True))
        written.resize(len(frames), axis=0)
        written[:] = frames
        encode = chunk_encoder(written)
        for row, frame in enumerate(frames):
            _mask, stored = written.id.read_direct_chunk((row, 0, 0))
            assert encode(frame) == stored
            assert fletcher32(frame.reshape(-1)) == int.from_bytes(stored[-4:], "little")


@pytest.mark.parametrize("options", [{"compression": "gzip"}, {"compression": "gzip", "shuffle": True},
                                     {"scaleoffset": 0}], ids=["gzip", "shuffle+gzip", "scaleoffset"])
def test_a_pipeline_it_cannot_reproduce_gives_none(tmp_path, options):
    frames = np.zeros((1, 4, 4), np.uint16)
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        assert chunk_encoder(_image_dataset(h5, "depth", frames, options)) is None


def test_chunks_of_several_frames_or_a_wrong_frame_are_refused(tmp_path):
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        rows = h5.create_dataset("rows", (0, 4), dtype=np.float32, maxshape=(None, 4), chunks=(64, 4))
        assert chunk_encoder(rows) is None
        encode = chunk_encoder(_image_dataset(h5, "depth", np.zeros((1, 4, 4), np.uint16), {}))
        with pytest.raises(ValueError, match="shape"):
            encode(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("compression", ["none", "zstd"], ids=["uncompressed", "blosc2-depth"])
def test_a_corrupted_prepared_chunk_fails_fletcher32(tmp_path, sim_frames, compression):
    # Uncompressed, only Fletcher-32 can notice the flipped bit: without it the pixel reads wrong.
    depth = sim_frames["depth"]
    options = {**compression_options(compression, depth.dtype), **checksum_options(True)}
    with h5py.File(tmp_path / "episode.h5", "w", libver=LIBVER) as h5:
        dataset = _image_dataset(h5, "depth", depth, options)
        encode = chunk_encoder(dataset)
        good, bad = encode(depth[0]), bytearray(encode(depth[1]))
        bad[len(bad) // 2] ^= 0x10
        write_chunks(dataset, 0, [good, bytes(bad)])
        np.testing.assert_array_equal(dataset[0], depth[0])
        with pytest.raises(OSError):
            dataset[1]
        assert raw_frame_problems(dataset, [0, 1]) == {1: "checksum mismatch in 'depth'"}  # verify's words


_SWMR_READER = textwrap.dedent("""
    import sys
    import h5py, hdf5plugin, numpy as np
    with h5py.File(sys.argv[1], "r", libver="latest", swmr=True) as h5:
        depth = h5["depth"]
        print(depth.shape[0], flush=True)
        sys.stdin.readline()  # the writer has written and flushed
        depth.refresh()
        np.save(sys.argv[2], depth[:])
""")


def test_a_swmr_reader_sees_direct_written_frames_after_flush(tmp_path, sim_frames):
    depth = sim_frames["depth"]
    options = {**compression_options("zstd", depth.dtype), **checksum_options(True)}
    path, seen = tmp_path / "episode.h5", tmp_path / "seen.npy"
    with h5py.File(path, "w", libver=LIBVER) as h5:
        dataset = _image_dataset(h5, "depth", depth, options)
        encode = chunk_encoder(dataset)
        h5.swmr_mode = True
        h5.flush()
        reader = subprocess.Popen([sys.executable, "-c", _SWMR_READER, str(path), str(seen)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout.readline().strip() == "0"  # opened before any frame was written
            write_chunks(dataset, 0, [encode(frame) for frame in depth])
            h5.flush()
            reader.communicate("flushed\n", timeout=60)
        finally:
            reader.kill()
    assert reader.returncode == 0
    np.testing.assert_array_equal(np.load(seen), depth)

