"""Recording throughput: 1 to 4 simulated RGB-D cameras plus a 1 kHz glove, raw and LZ4.

For each configuration, records one episode through the real processes and sockets and prints:
frames offered (published by the nodes during the episode, from seq), written, dropped; MB/s;
capture-to-disk latency p50/p99; recorder CPU; recorder RSS early vs late (must stay flat).
The disk's own sequential write bandwidth is measured first, in the same run, as the ceiling.

    python benchmarks/record_throughput.py --seconds 30 --cameras 1 2 3 4
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
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="collector-bench-"))
    out.mkdir(parents=True, exist_ok=True)
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
