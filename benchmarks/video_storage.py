"""Video storage, side by side: every colour encoding on the same simulated frames, depth codecs.

    python benchmarks/video_storage.py                       # 10 s per encoding, 640x480 at 30 fps
    python benchmarks/video_storage.py --seconds 4 --scrub-minutes 0   # quick look
    python benchmarks/video_storage.py --scrub-minutes 10 --dataset   # + scrubbing a 10-minute
                                                                      # episode, EpisodeDataset

Colour, one row per encoding (``raw``, ``jpeg``, ``h264``, ``hevc``, ``av1``), each written by the
real episode writer (``HDF5EpisodeWriter``, encoding on the calling thread as on the recorder's
writer thread) from the same rendered RGB-D frames with camera-like noise:

* ``MB/cam-h``: the colour stream's bytes in the file per camera-hour;
* ``PSNR``/``SSIM``: every frame read back through ``open_episode`` against the raw frame;
* ``enc ms``: the writer's CPU per frame (encode + HDF5), one thread;
* ``stop s``: ``close()`` (Stop -> ready: drain the encoder, flush, finalise);
* ``RSS MB``: the process's peak resident memory growth while writing that episode;
* ``seq fps``: frames/s reading the episode front to back; ``rand ms``: p50/max of one frame at
  random positions (fresh reader each, so each seeks to its keyframe and decodes forward).

A colour row ``lerobot-av1`` re-encodes the frames as LeRobot's default video export does
(libsvtav1 preset 12, CRF 30, GOP 2, yuv420p, in an mp4 through the same PyAV), for its quality
and size on the same frames; with ``--lerobot-python PATH`` (a python where LeRobot is
installed) ``lerobot-own`` has LeRobot's own ``encode_video_frames`` encode them (encode CPU of
that call alone). ``--rig`` measures the episode writer's CPU per recorded second for 2 RGB-D cameras + a
1 kHz glove per encoding (the recorder's writer thread in the rig the default is chosen for).
``--dataset`` times ``EpisodeDataset`` (224x224 images, horizon 16, shuffled, 0
workers) over the same simulated episodes stored raw, JPEG and in the new-config video encoding.
Depth, one row per lossless codec, on the same frames: ratio to raw and encode/decode
CPU per frame. ``--scrub-minutes N`` writes an N-minute episode in the default new-config
encoding and times random seeks the way the review player makes them (any frame < 150 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import NEW_CONFIG_RECORDING  # noqa: E402
from collector.review.playback import EpisodePlayback  # noqa: E402
from collector.storage.layout import BYTES_SUFFIXES, OFFSETS_SUFFIX  # noqa: E402
from collector.storage.reader import open_episode  # noqa: E402
from collector.storage.writer import HDF5EpisodeWriter  # noqa: E402
from collector.wire.protocol import Sample  # noqa: E402
from collector.wire.streams import FieldSpec, StreamSpec  # noqa: E402
from devices.sim_camera.render import Renderer, camera_for_view  # noqa: E402
from devices.sim_world import World  # noqa: E402

RATE = 30.0
ENCODINGS = ["raw", "jpeg", "h264", "hevc", "av1"]


def render(frames: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` consecutive simulated RGB-D frames (30 fps, with the renderer's sensor noise)."""
    world = World(seed=0)
    renderer = Renderer(world, camera_for_view(0, width, height), 0, 0)
    pairs = [renderer.render(world.state_at(1000.0 + i / RATE), i) for i in range(frames)]
    return np.stack([c for c, _ in pairs]), np.stack([d for _, d in pairs])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-12)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window 11 / sigma 1.5) over the RGB channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    blur = lambda img: cv2.GaussianBlur(img, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def quality(decoded: np.ndarray, raw: np.ndarray, every: int = 5) -> tuple[float, float]:
    picks = range(0, len(raw), every)
    return (float(np.mean([psnr(decoded[i], raw[i]) for i in picks])),
            float(np.mean([ssim(decoded[i], raw[i]) for i in picks])))


def stream_bytes(path: Path, stream: str) -> int:
    """Bytes of the stream's sample data in the file: JPEG/video bytes up to the last frame's
    end (a short file's last, partly filled chunk would dominate otherwise), other datasets as
    stored (compressed)."""
    with h5py.File(path) as f:
        group, total = f[f"streams/{stream}"], 0
        for name, ds in group.items():
            if name.endswith(BYTES_SUFFIXES):
                total += int(group[name.rsplit(".", 1)[0] + OFFSETS_SUFFIX][-1])
            elif isinstance(ds, h5py.Dataset):
                total += ds.id.get_storage_size()
        return total


def colour_row(encoding: str, rgb: np.ndarray, out: Path) -> dict:
    height, width = rgb.shape[1:3]
    specs = [StreamSpec("cam0/color", "color", RATE, [FieldSpec("rgb", "|u1", (height, width, 3))]),
             ]
    path = out / f"colour-{encoding}.h5"
    path.unlink(missing_ok=True)
    process = psutil.Process()
    rss0, peak = process.memory_info().rss, 0
    writer = HDF5EpisodeWriter(path, specs, {"task": "bench"}, color_encoding=encoding,
                               compression="lz4")
    cpu0 = time.process_time()
    t0 = time.time_ns()
    for k in range(len(rgb)):
        t = t0 + int(k * 1e9 / RATE)
        writer.append(Sample("cam0", "cam0/color", k, t, t, {"rgb": rgb[k]}), t)
        if k % 15 == 14:
            writer.flush()
            peak = max(peak, process.memory_info().rss - rss0)
    encode_cpu = time.process_time() - cpu0
    stop0 = time.perf_counter()
    writer.close()
    stop_s = time.perf_counter() - stop0
    colour = stream_bytes(path, "cam0/color")
    with open_episode(path) as ep:
        t_read = time.perf_counter()
        decoded = np.stack([ep.frames("cam0/color", "rgb", i) for i in range(len(rgb))])
        seq_fps = len(rgb) / (time.perf_counter() - t_read)
    rng = np.random.default_rng(1)
    random_ms = []
    for i in rng.integers(0, len(rgb), 20):
        with open_episode(path) as ep:
            t_read = time.perf_counter()
            ep.frames("cam0/color", "rgb", int(i))
            random_ms.append((time.perf_counter() - t_read) * 1e3)
    p, s = quality(decoded, rgb)
    hours = len(rgb) / RATE / 3600
    return {"name": encoding, "mb_h": colour / 1e6 / hours, "psnr": p, "ssim": s,
            "enc_ms": encode_cpu / len(rgb) * 1e3, "stop_s": stop_s, "rss_mb": peak / 2**20,
            "seq_fps": seq_fps, "rand_p50": float(np.median(random_ms)), "rand_max": max(random_ms)}


def lerobot_reference_row(rgb: np.ndarray, out: Path) -> dict:
    """LeRobot's default export encoding (lerobot.datasets.video_utils.encode_video_frames:
    libsvtav1 preset 12, crf 30, g 2, yuv420p) of the same frames, written to an mp4 by PyAV."""
    import av

    path = out / "lerobot-default.mp4"
    cpu0 = time.process_time()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=Fraction(int(RATE)))
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
        stream.options = {"crf": "30", "g": "2", "preset": "12"}
        for frame in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    encode_cpu = time.process_time() - cpu0
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    p, s = quality(decoded, rgb)
    hours = len(rgb) / RATE / 3600
    return {"name": "lerobot-av1", "mb_h": path.stat().st_size / 1e6 / hours, "psnr": p, "ssim": s,
            "enc_ms": encode_cpu / len(rgb) * 1e3, "stop_s": float("nan"), "rss_mb": float("nan"),
            "seq_fps": float("nan"), "rand_p50": float("nan"), "rand_max": float("nan")}


def lerobot_own_row(rgb: np.ndarray, out: Path, python: str) -> dict:
    """The same frames encoded by LeRobot's own ``encode_video_frames`` (its defaults), run with
    ``python`` (an environment where ``lerobot`` is installed), from PNGs as LeRobot writes them."""
    import subprocess

    import av

    frames_dir, path = out / "lerobot-frames", out / "lerobot-own.mp4"
    frames_dir.mkdir(exist_ok=True)
    for i, frame in enumerate(rgb):
        cv2.imwrite(str(frames_dir / f"frame-{i:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    code = ("import sys, time; from lerobot.datasets.video_utils import encode_video_frames; "
            "t = time.process_time(); encode_video_frames(sys.argv[1], sys.argv[2], int(sys.argv[3]), "
            "overwrite=True); print(time.process_time() - t)")
    done = subprocess.run([python, "-c", code, str(frames_dir), str(path), str(int(RATE))],
                          capture_output=True, text=True, check=True)
    encode_cpu = float(done.stdout.strip().splitlines()[-1])
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    p, s = quality(decoded, rgb)
    hours = len(rgb) / RATE / 3600
    return {"name": "lerobot-own", "mb_h": path.stat().st_size / 1e6 / hours, "psnr": p, "ssim": s,
            "enc_ms": encode_cpu / len(rgb) * 1e3, "stop_s": float("nan"), "rss_mb": float("nan"),
            "seq_fps": float("nan"), "rand_p50": float("nan"), "rand_max": float("nan")}


def depth_rows(depth: np.ndarray, out: Path) -> list[dict]:
    blosc2 = hdf5plugin.Blosc2
    filters = {
        "blosc2-lz4-shuffle (before)": blosc2(cname="lz4", clevel=5, filters=blosc2.SHUFFLE),
        "blosc2-zstd1-bitshuffle (now)": blosc2(cname="zstd", clevel=1, filters=blosc2.BITSHUFFLE),
        "blosc2-zstd5-bitshuffle": blosc2(cname="zstd", clevel=5, filters=blosc2.BITSHUFFLE),
        "blosc2-zstd1-delta": blosc2(cname="zstd", clevel=1, filters=blosc2.DELTA),
        "zstd3": hdf5plugin.Zstd(clevel=3),
        "jpeg-ls (fcidecomp)": hdf5plugin.FciDecomp(),
    }
    rows, path = [], out / "depth.h5"
    for name, options in filters.items():
        with h5py.File(path, "w") as f:
            cpu0 = time.process_time()
            ds = f.create_dataset("d", data=depth, chunks=(1, *depth.shape[1:]), **options)
            enc = time.process_time() - cpu0
        with h5py.File(path) as f:
            size = f["d"].id.get_storage_size()
            cpu0 = time.process_time()
            back = f["d"][:]
            dec = time.process_time() - cpu0
        assert np.array_equal(back, depth), f"{name} is not lossless"
        rows.append({"name": name, "ratio": depth.nbytes / size, "enc_ms": enc / len(depth) * 1e3,
                     "dec_ms": dec / len(depth) * 1e3})
    rows.append(ffv1_row(depth))
    return rows


def ffv1_row(depth: np.ndarray) -> dict:
    """FFV1 (lossless video, 16-bit grey) through PyAV, intra-only so every frame stands alone."""
    import av

    encoder = av.CodecContext.create("ffv1", "w")
    encoder.width, encoder.height, encoder.pix_fmt = depth.shape[2], depth.shape[1], "gray16le"
    encoder.time_base, encoder.thread_count = Fraction(1, int(RATE)), 1
    encoder.options = {"level": "3", "g": "1"}
    cpu0, packets = time.process_time(), []
    for i, frame in enumerate(depth):
        image = av.VideoFrame.from_ndarray(frame, format="gray16le")
        image.pts = i
        packets += [bytes(p) for p in encoder.encode(image)]
    packets += [bytes(p) for p in encoder.encode(None)]
    enc = time.process_time() - cpu0
    decoder = av.CodecContext.create("ffv1", "r")
    decoder.extradata = encoder.extradata
    decoder.width, decoder.height = encoder.width, encoder.height
    cpu0 = time.process_time()
    back = np.stack([f.to_ndarray() for p in packets for f in decoder.decode(av.Packet(p))])
    dec = time.process_time() - cpu0
    assert np.array_equal(back, depth), "ffv1 is not lossless"
    return {"name": "ffv1 (pyav, gray16le)", "ratio": depth.nbytes / sum(map(len, packets)),
            "enc_ms": enc / len(depth) * 1e3, "dec_ms": dec / len(depth) * 1e3}


def scrub(minutes: float, rgb: np.ndarray, out: Path, encoding: str) -> dict:
    """Write a ``minutes``-long episode (the rendered frames looped) and time random seeks
    through the review player's model, as a scrub bar makes them."""
    height, width = rgb.shape[1:3]
    spec = StreamSpec("cam0/color", "color", RATE, [FieldSpec("rgb", "|u1", (height, width, 3))])
    path = out / f"scrub-{encoding}.h5"
    path.unlink(missing_ok=True)
    writer = HDF5EpisodeWriter(path, [spec], {"task": "scrub"}, color_encoding=encoding)
    frames = int(minutes * 60 * RATE)
    t0, process, rss = time.time_ns(), psutil.Process(), []
    for k in range(frames):
        t = t0 + int(k * 1e9 / RATE)
        writer.append(Sample("cam0", "cam0/color", k, t, t, {"rgb": rgb[k % len(rgb)]}), t)
        if k % 30 == 29:
            writer.flush()
        if k % int(60 * RATE) == int(60 * RATE) - 1:  # once per recorded minute
            rss.append(process.memory_info().rss / 2**20)
    writer.close()
    seek_ms, step_back_ms = [], []
    with EpisodePlayback(path) as playback:
        rng = np.random.default_rng(2)
        for step in rng.integers(0, playback.frame_count, 40):
            start = time.perf_counter()
            playback.frame(int(step))
            seek_ms.append((time.perf_counter() - start) * 1e3)
            if step > 0:
                start = time.perf_counter()
                playback.frame(int(step) - 1)
                step_back_ms.append((time.perf_counter() - start) * 1e3)
    return {"frames": frames, "file_MB": path.stat().st_size / 1e6, "rss_MB": rss,
            "seek_p50": float(np.median(seek_ms)), "seek_max": max(seek_ms),
            "back_max": max(step_back_ms)}


def dataset_rates(encodings: list[str], seconds: float, out: Path, limit: int = 256) -> dict:
    """``EpisodeDataset`` samples/s (random order, 0 workers) over 2 episodes per encoding."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "collector"))
    from dataset_throughput import samples_per_s
    from sim_episodes import write_sim_episode

    from collector.dataset import EpisodeDataset
    from collector.export.selection import SignalMapping

    rates = {}
    for encoding in encodings:
        folder = out / f"dataset-{encoding}"
        for i in range(2):
            path = folder / f"ep{i}.h5"
            path.unlink(missing_ok=True)
            write_sim_episode(path, seed=i, seconds=seconds, width=640, height=480,
                              color_encoding=encoding, epoch_offset_s=1 + 3 * i)
        ds = EpisodeDataset([folder], mapping=SignalMapping(image_size=(224, 224)), horizon=16)
        rates[encoding] = samples_per_s(ds, 0, 32, limit)
    return rates


LEROBOT_LOADER = r"""
import sys, time
from torch.utils.data import DataLoader
from lerobot.datasets.lerobot_dataset import LeRobotDataset
dataset = LeRobotDataset("local/video-storage", root=sys.argv[1], video_backend="pyav")
loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=0)
start, seen = time.perf_counter(), 0
for item in loader:
    seen += item["index"].shape[0]
    if seen >= int(sys.argv[2]):
        break
print(seen / (time.perf_counter() - start))
"""


def lerobot_loader_rate(folder: Path, out: Path, python: str, limit: int = 256) -> float:
    """LeRobot's own loader (pyav backend, random order, 0 workers) over the LeRobot export of
    the episodes in ``folder``, run with ``python`` (where LeRobot is installed)."""
    import shutil
    import subprocess

    from collector.export.lerobot import export_lerobot
    from collector.export.selection import SignalMapping

    root = out / "lerobot-export"
    shutil.rmtree(root, ignore_errors=True)
    export_lerobot([folder], root, mapping=SignalMapping(), show_progress=False)
    done = subprocess.run([python, "-c", LEROBOT_LOADER, str(root), str(limit)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def rig_writer_cpu(encoding: str, rgb: np.ndarray, depth: np.ndarray, out: Path) -> dict:
    """The episode writer's CPU per recorded second for 2 RGB-D cameras + a 1 kHz glove (22
    floats), LZ4 (depth: Blosc2 Zstd), checksums on: the recorder's writer thread's load in the
    rig the new-config default is chosen for, measured as CPU time so other load does not count."""
    height, width = rgb.shape[1:3]
    specs = [StreamSpec(f"cam{i}/{kind}", kind, RATE, [field])
             for i in range(2) for kind, field in (("color", FieldSpec("rgb", "|u1", (height, width, 3))),
                                                    ("depth", FieldSpec("depth", "<u2", (height, width))))]
    specs.append(StreamSpec("glove/hand", "state", 1000.0, [FieldSpec("joints", "<f4", (22,))]))
    path = out / f"rig-{encoding}.h5"
    path.unlink(missing_ok=True)
    writer = HDF5EpisodeWriter(path, specs, {"task": "rig"}, color_encoding=encoding, compression="lz4")
    cpu0, t0 = time.process_time(), time.time_ns()
    for k in range(len(rgb)):
        t = t0 + int(k * 1e9 / RATE)
        for i in range(2):
            j = (k + 7 * i) % len(rgb)  # the two cameras see different frames
            writer.append(Sample(f"cam{i}", f"cam{i}/color", k, t, t, {"rgb": rgb[j]}), t)
            writer.append(Sample(f"cam{i}", f"cam{i}/depth", k, t, t, {"depth": depth[j]}), t)
        for g in range(33):
            writer.append(Sample("glove", "glove/hand", k * 33 + g, t, t,
                                 {"joints": np.full(22, g, np.float32)}), t)
        if k % 15 == 14:
            writer.flush()
    writer.close()
    seconds = len(rgb) / RATE
    return {"cpu_per_s": (time.process_time() - cpu0) / seconds,
            "mb_per_min": path.stat().st_size / 1e6 / seconds * 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each colour episode")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--encodings", nargs="+", default=ENCODINGS, choices=ENCODINGS)
    parser.add_argument("--scrub-minutes", type=float, default=0.0,
                        help="also time review scrubbing of an episode this long (0: skip)")
    parser.add_argument("--lerobot-python",
                        help="a python with lerobot installed: add LeRobot's own encoder's row")
    parser.add_argument("--rig", action="store_true",
                        help="also the writer's CPU for 2 RGB-D cameras + 1 kHz glove per encoding")
    parser.add_argument("--dataset", action="store_true",
                        help="also time EpisodeDataset random access per encoding")
    parser.add_argument("--out", help="folder for the files (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="collector-video-"))
    out.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    rgb, depth = render(int(args.seconds * RATE), args.width, args.height)
    print(f"{len(rgb)} frames {args.width}x{args.height} at {RATE:g} fps; cores: {os.cpu_count()}; "
          f"files in {out}")
    print(f"{'colour':<12}{'MB/cam-h':>10}{'x raw':>8}{'PSNR dB':>9}{'SSIM':>7}{'enc ms':>8}"
          f"{'stop s':>8}{'RSS MB':>8}{'seq fps':>9}{'rand ms p50/max':>17}")
    rows = [colour_row(e, rgb, out) for e in args.encodings]
    rows.append(lerobot_reference_row(rgb, out))
    if args.lerobot_python:
        rows.append(lerobot_own_row(rgb, out, args.lerobot_python))
    raw_mb_h = args.width * args.height * 3 * RATE * 3600 / 1e6
    for r in rows:
        print(f"{r['name']:<12}{r['mb_h']:>10.0f}{raw_mb_h / r['mb_h']:>8.0f}{r['psnr']:>9.1f}"
              f"{r['ssim']:>7.3f}{r['enc_ms']:>8.1f}{r['stop_s']:>8.2f}{r['rss_mb']:>8.0f}"
              f"{r['seq_fps']:>9.0f}{r['rand_p50']:>9.1f}/{r['rand_max']:<7.1f}", flush=True)
    print(f"\n{'depth (lossless)':<32}{'ratio':>7}{'enc ms':>8}{'dec ms':>8}")
    for r in depth_rows(depth, out):
        print(f"{r['name']:<32}{r['ratio']:>7.2f}{r['enc_ms']:>8.2f}{r['dec_ms']:>8.2f}", flush=True)
    if args.rig:
        print("\nepisode writer, 2 RGB-D cameras + 1 kHz glove, LZ4, checksums (CPU s per recorded s):")
        for encoding in args.encodings:
            r = rig_writer_cpu(encoding, rgb, depth, out)
            print(f"  {encoding:<6} {r['cpu_per_s']:.2f} CPU s/s, {r['mb_per_min']:.0f} MB per minute",
                  flush=True)
    if args.dataset:
        encodings = ["raw", "jpeg", NEW_CONFIG_RECORDING["color_encoding"]]
        rates = dataset_rates(encodings, args.seconds, out)
        print("\nEpisodeDataset, random order, 0 workers, 224x224, action chunks of 16: " + ", ".join(
            f"{e} {r:.0f} samples/s" for e, r in rates.items()), flush=True)
        if args.lerobot_python:
            theirs = lerobot_loader_rate(out / f"dataset-{encodings[-1]}", out, args.lerobot_python)
            print(f"LeRobot's own loader over the LeRobot export of the same episodes (pyav, random "
                  f"order, 0 workers, 640x480 frames): {theirs:.0f} samples/s; EpisodeDataset over "
                  f"the {encodings[-1]} episodes is {rates[encodings[-1]] / theirs:.1f}x")
    if args.scrub_minutes:
        encoding = NEW_CONFIG_RECORDING["color_encoding"]
        s = scrub(args.scrub_minutes, rgb, out, encoding)
        print(f"\nreview scrubbing, {args.scrub_minutes:g} min {encoding} episode ({s['frames']} frames, "
              f"{s['file_MB']:.0f} MB): random seek p50 {s['seek_p50']:.0f} ms, max {s['seek_max']:.0f} ms; "
              f"step back max {s['back_max']:.1f} ms; writer process RSS at each recorded minute "
              f"{', '.join(f'{v:.0f}' for v in s['rss_MB'])} MB")


if __name__ == "__main__":
    main()
