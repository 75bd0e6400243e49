"""Depth pre-roll written through HDF5's filter pipeline vs prepared chunks (collector.storage.chunks).

    python benchmarks/depth_chunks.py                  # 2 cameras x 90 frames, 640x480, 3 runs
    python benchmarks/depth_chunks.py --frames 30 --runs 1      # quick look

The burst an episode's Start writes: each camera's 3 s of simulated depth (Blosc2 Zstd bit-shuffle
with Fletcher-32, as the episode writer stores depth) into a SWMR file, then a flush.

* ``pipeline``: plain h5py writes, HDF5 compressing each chunk on the writing thread;
* ``prepared``: ``chunk_encoder`` compresses each frame (as the recorder will, before Start), then
  ``write_chunks`` stores the bytes with ``write_direct_chunk``; compress and write timed apart;
* CPU seconds of the calling thread, the median of the runs; file sizes of both and their ratio;
* GIL: how fast a pure-Python loop runs while another thread compresses the frames, against
  alone (about 100% when compression releases the GIL and a core is free, about 50% when not).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.storage.chunks import chunk_encoder, write_chunks  # noqa: E402
from collector.storage.crc import checksum_options  # noqa: E402
from collector.storage.layout import LIBVER  # noqa: E402
from collector.storage.writer import compression_options  # noqa: E402
from devices.sim_camera.render import Renderer, camera_for_view  # noqa: E402
from devices.sim_world import World  # noqa: E402

RATE = 30.0
OPTIONS = {**compression_options("zstd", np.uint16), **checksum_options(True)}


def render_depth(cameras: int, frames: int, width: int, height: int) -> list[np.ndarray]:
    """``frames`` consecutive simulated depth frames per camera (views 0, 1, ...)."""
    world = World(seed=0)
    out = []
    for view in range(cameras):
        renderer = Renderer(world, camera_for_view(view, width, height), 0, view)
        out.append(np.stack([renderer.render(world.state_at(1000.0 + i / RATE), i)[1]
                             for i in range(frames)]))
    return out


def open_episode(path: Path, cameras: list[np.ndarray]) -> tuple[h5py.File, list[h5py.Dataset]]:
    """A SWMR file with one depth dataset per camera, one frame per chunk, as the writer makes it."""
    h5 = h5py.File(path, "w", libver=LIBVER)
    shape = cameras[0].shape[1:]
    datasets = [h5.create_dataset(f"depth{i}", (0, *shape), dtype=np.uint16, maxshape=(None, *shape),
                                  chunks=(1, *shape), **OPTIONS) for i in range(len(cameras))]
    h5.swmr_mode = True
    return h5, datasets


def through_pipeline(path: Path, cameras: list[np.ndarray]) -> float:
    h5, datasets = open_episode(path, cameras)
    start = time.thread_time()
    for dataset, frames in zip(datasets, cameras):
        dataset.resize(len(frames), axis=0)
        dataset[:] = frames
    h5.flush()
    cpu = time.thread_time() - start
    h5.close()
    return cpu


def prepared(path: Path, cameras: list[np.ndarray]) -> tuple[float, float]:
    h5, datasets = open_episode(path, cameras)
    encoders = [chunk_encoder(dataset) for dataset in datasets]
    start = time.thread_time()
    chunks = [[encode(frame) for frame in frames] for encode, frames in zip(encoders, cameras)]
    compress = time.thread_time() - start
    start = time.thread_time()
    for dataset, camera_chunks in zip(datasets, chunks):
        write_chunks(dataset, 0, camera_chunks)
    h5.flush()
    write = time.thread_time() - start
    h5.close()
    return compress, write


def python_share(encode, frames: list[np.ndarray]) -> float:
    """How fast a pure-Python loop runs while another thread compresses ``frames``, against
    alone: about 1 when compression releases the GIL (given a free core), about 0.5 when not."""
    start = time.perf_counter()
    for frame in frames:
        encode(frame)
    seconds = time.perf_counter() - start
    alone = count_for(seconds)
    worker = threading.Thread(target=lambda: [encode(frame) for frame in frames])
    worker.start()
    beside = count_for(seconds)
    worker.join()
    return beside / alone


def count_for(seconds: float) -> int:
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=90, help="frames per camera (3 s at 30 fps)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    cameras = render_depth(args.cameras, args.frames, args.width, args.height)
    total = sum(len(frames) for frames in cameras)
    raw_bytes = sum(frames.nbytes for frames in cameras)
    pipeline_cpu, compress_cpu, write_cpu, share = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        plain_path, prepared_path = Path(tmp) / "pipeline.h5", Path(tmp) / "prepared.h5"
        for _ in range(args.runs):
            plain_path.unlink(missing_ok=True)
            prepared_path.unlink(missing_ok=True)
            pipeline_cpu.append(through_pipeline(plain_path, cameras))
            compress, write = prepared(prepared_path, cameras)
            compress_cpu.append(compress)
            write_cpu.append(write)
        with h5py.File(prepared_path, "r") as h5:
            encode = chunk_encoder(h5["depth0"])
            frames = [frame for camera in cameras for frame in camera]
            share = [python_share(encode, frames) for _ in range(args.runs)]
        plain_size, prepared_size = plain_path.stat().st_size, prepared_path.stat().st_size

    med = statistics.median
    print(f"{args.cameras} cameras x {args.frames} depth frames {args.width}x{args.height} "
          f"({total} frames, {raw_bytes / 1e6:.1f} MB raw), median of {args.runs} runs, CPU s of the "
          f"writing thread")
    print(f"  pipeline (h5py writes, HDF5 compresses):   {med(pipeline_cpu):.3f} s")
    print(f"  prepared: compress (chunk_encoder)          {med(compress_cpu):.3f} s")
    print(f"            write (write_chunks + flush)      {med(write_cpu):.3f} s")
    print(f"  file: pipeline {plain_size / 1e6:.2f} MB, prepared {prepared_size / 1e6:.2f} MB "
          f"(ratio {prepared_size / plain_size:.4f}); depth {raw_bytes / prepared_size:.2f}x smaller "
          f"than raw")
    print(f"  a Python thread beside the compressing one runs at {med(share):.0%} of its speed alone "
          f"(GIL released: ~100%; held: ~50%)")


if __name__ == "__main__":
    main()
