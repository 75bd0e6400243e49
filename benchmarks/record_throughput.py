"""Recording throughput: 1 to 4 simulated RGB-D cameras plus a 1 kHz glove, raw and LZ4.

For each configuration, records one episode through the real processes and sockets and prints:
frames offered (published by the nodes during the episode, from seq), written, dropped; MB/s;
capture-to-disk latency p50/p99; recorder CPU; recorder RSS early vs late (must stay flat).
The disk's own sequential write bandwidth is measured first, in the same run, as the ceiling.

    python benchmarks/record_throughput.py --seconds 30 --cameras 1 2 3 4
    python benchmarks/record_throughput.py --checksums on off --cameras 1   # the writer's cost of
                                                                              # Fletcher-32 and CRCs

``--checksums`` times the episode writer alone (``EpisodeWriter(checksums=...)``) on the same
simulated samples, on and off: CPU seconds per second of recording and MB/s, per codec and
color encoding (the processes and sockets are the same either way).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import sim_config  # noqa: E402
from collector.episode_reader import open_episode  # noqa: E402
from collector.session import Session  # noqa: E402


def disk_bandwidth_mb_s(folder: Path, total_mb: int = 1024) -> float:
    """Sequential write with fsync: the ceiling any recorder on this disk can reach."""
    block = np.random.default_rng(0).integers(0, 255, 4 << 20, dtype=np.uint8).tobytes()
    path = folder / "disk-probe.bin"
    start = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(total_mb // 4):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return total_mb / elapsed


def checksum_cost(cameras: int, compression: str, color_encoding: str, checksums: bool,
                  seconds: float, out: Path) -> dict:
    """Write ``seconds`` of 30 fps 640x480 RGB-D per camera plus a 1 kHz glove through
    EpisodeWriter, flushing every 0.5 s of data; CPU time and throughput of the writer alone."""
    from collector.episode import EpisodeWriter
    from collector.protocol import Sample
    from collector.streams import FieldSpec, StreamSpec

    rng = np.random.default_rng(0)
    specs = [StreamSpec(f"cam{i}/color", "color", 30.0, [FieldSpec("rgb", "uint8", (480, 640, 3))])
             for i in range(cameras)]
    specs += [StreamSpec(f"cam{i}/depth", "depth", 30.0, [FieldSpec("depth", "uint16", (480, 640))])
              for i in range(cameras)]
    specs.append(StreamSpec("glove/hand", "state", 1000.0, [FieldSpec("joints", "float32", (22,))]))
    # A smooth image (JPEG and LZ4 see realistic work) and a noisy depth map.
    yy, xx = np.mgrid[0:480, 0:640]
    rgb = np.stack([(xx // 3) % 256, (yy // 2) % 256, ((xx + yy) // 5) % 256], -1).astype(np.uint8)
    depth = (1000 + rng.integers(0, 50, (480, 640))).astype(np.uint16)
    path = out / f"checksums-{checksums}-{compression}-{color_encoding}.h5"
    path.unlink(missing_ok=True)
    proc = psutil.Process()
    cpu0, t0 = proc.cpu_times(), time.perf_counter()
    writer = EpisodeWriter(path, specs, {"task": "bench"}, compression=compression,
                           color_encoding=color_encoding, checksums=checksums)
    frames = int(seconds * 30)
    for k in range(frames):
        t = time.time_ns()
        for i in range(cameras):
            writer.append(Sample(f"cam{i}", f"cam{i}/color", k, t, t, {"rgb": rgb}), t)
            writer.append(Sample(f"cam{i}", f"cam{i}/depth", k, t, t, {"depth": depth}), t)
        for j in range(33):
            writer.append(Sample("glove", "glove/hand", k * 33 + j, t, t,
                                 {"joints": np.full(22, j, np.float32)}), t)
        if k % 15 == 14:
            writer.flush()
    writer.close()
    cpu1, t1 = proc.cpu_times(), time.perf_counter()
    size = path.stat().st_size
    path.unlink()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"cpu_per_s": cpu / seconds, "MB_s": size / 2**20 / (t1 - t0), "file_MB": size / 2**20}


def run(cameras: int, compression: str, seconds: float, out: Path) -> dict:
    config = sim_config(seed=0, cameras=cameras, glove_rate_hz=1000.0)
    config.recording.output = out
    config.recording.compression = compression
    config.recording.min_free_gb = 0.1
    with Session(config) as session:
        recorder = psutil.Process(session.supervisor.recorder.process.pid)
        time.sleep(1.0)
        session.start_episode(task=f"bench-{cameras}cam-{compression}")
        cpu0, t0 = recorder.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            rss.append(recorder.memory_info().rss / 2**20)
        cpu1, t1 = recorder.cpu_times(), time.monotonic()
        status = session.status()
        result = session.stop_episode()
    path = Path(result["path"])
    offered = written = 0
    data_bytes = 0
    with open_episode(path) as ep:
        for stream in ep.streams:
            seq = ep.timestamps(stream)["seq"].astype(np.int64)
            if len(seq):
                offered += int(seq[-1] - seq[0] + 1)
                written += len(seq)
            data_bytes += ep.count(stream) * ep.streams[stream].bytes_per_sample
    third = max(1, len(rss) // 3)
    latency = status.get("disk_latency_ms") or {}
    return {
        "cameras": cameras, "compression": compression, "offered": offered, "written": written,
        "dropped": offered - written + status["overflow"],
        "data_MB_s": data_bytes / 2**20 / (t1 - t0),
        "file_MB_s": path.stat().st_size / 2**20 / (t1 - t0),
        "lat_p50_ms": latency.get("p50", float("nan")), "lat_p99_ms": latency.get("p99", float("nan")),
        "recorder_cpu": ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (t1 - t0),
        "rss_early_MB": max(rss[:third]), "rss_late_MB": max(rss[-third:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--compression", nargs="+", default=["none", "lz4"])
    parser.add_argument("--out", help="folder to record into (default: a temporary folder)")
    parser.add_argument("--checksums", nargs="+", choices=["on", "off"],
                        help="instead: the episode writer's cost with checksums on and off")
    parser.add_argument("--color-encoding", nargs="+", default=["raw", "jpeg"])
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="collector-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.checksums:
        print(f"episode writer alone, {args.seconds:g} s of data per run; cores: {os.cpu_count()}")
        print(f"{'cams':>4} {'codec':>5} {'color':>5} {'checksums':>9} {'CPU s/s':>8} {'MB/s':>7} {'file MB':>8}")
        for cameras in args.cameras:
            for compression in args.compression:
                for encoding in args.color_encoding:
                    for mode in args.checksums:
                        r = checksum_cost(cameras, compression, encoding, mode == "on", args.seconds, out)
                        print(f"{cameras:>4} {compression:>5} {encoding:>5} {mode:>9} "
                              f"{r['cpu_per_s']:>8.3f} {r['MB_s']:>7.0f} {r['file_MB']:>8.1f}", flush=True)
        return
    ceiling = disk_bandwidth_mb_s(out)
    print(f"disk sequential write with fsync: {ceiling:.0f} MB/s ({out}); cores: {os.cpu_count()}")
    header = (f"{'cams':>4} {'codec':>5} {'offered':>8} {'written':>8} {'dropped':>7} {'data MB/s':>9} "
              f"{'file MB/s':>9} {'% disk':>6} {'lat p50':>8} {'lat p99':>8} {'rec CPU':>7} "
              f"{'RSS early':>9} {'RSS late':>8}")
    print(header)
    for cameras in args.cameras:
        for compression in args.compression:
            r = run(cameras, compression, args.seconds, out)
            print(f"{r['cameras']:>4} {r['compression']:>5} {r['offered']:>8} {r['written']:>8} "
                  f"{r['dropped']:>7} {r['data_MB_s']:>9.1f} {r['file_MB_s']:>9.1f} "
                  f"{100 * r['file_MB_s'] / ceiling:>5.1f}% {r['lat_p50_ms']:>6.0f}ms {r['lat_p99_ms']:>6.0f}ms "
                  f"{100 * r['recorder_cpu']:>6.0f}% {r['rss_early_MB']:>8.0f}M {r['rss_late_MB']:>7.0f}M",
                  flush=True)
            for f in out.rglob("bench-*.h5"):
                f.unlink()


if __name__ == "__main__":
    main()
