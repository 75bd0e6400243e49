"""Recording throughput: 1 to 4 simulated RGB-D cameras plus a 1 kHz glove, raw and LZ4.

For each configuration, records one episode through the real processes and sockets and prints,
side by side: frames offered (published by the nodes during the episode, from seq), written,
dropped; file MB and MB/s; capture-to-disk latency p50/p99 and how much of it was the way to the
recorder (capture to receive p99); CPU-seconds per recorded second of the recorder (and of its
receiver and writer threads), the camera nodes and the glove node; recorder RSS early vs late
(must stay flat); Stop -> ready (``stop_episode`` until the episode file is closed).
The disk's own sequential write bandwidth is measured first, in the same run, as the ceiling.

    python benchmarks/record_throughput.py --seconds 30 --cameras 1 2 3 4
    python benchmarks/record_throughput.py --cameras 2 --compression lz4 --color-encoding raw h264 av1
    python benchmarks/record_throughput.py --checksums on off --cameras 1   # the writer's cost of
                                                                              # Fletcher-32 and CRCs

    python benchmarks/record_throughput.py --ledger --episodes 5 --seconds 6   # back-to-back
                                                                              # episodes, ledger

``--checksums`` times the episode writer alone (``HDF5EpisodeWriter(checksums=...)``) on the same
simulated samples, on and off: CPU seconds per second of recording and MB/s, per codec and
color encoding (the processes and sockets are the same either way).

``--ledger`` records ``--episodes`` back-to-back episodes (Stop, then Start at once: zero reset
time) from one 640x480 simulated camera and a ``--glove-hz`` glove, for checksums on and off,
without and with a CPU competitor (``--competitors`` processes spinning, default one per core),
and prints per configuration: what the nodes published inside the episodes' windows (ledger),
what was written, what is missing by reason, samples written outside their episode's window
(must be 0), ledger balance (episodes whose every stream balances with nothing missing, over
all; must be 100 %; "books": episodes whose every stream balances, missing samples accounted
for), samples that arrived after their episode had closed ("late"), Stop -> ready p50/p99 (from calling ``stop_episode`` until the next
``start_episode`` has returned) and the recorder's CPU seconds per recorded second (from the
first Start until the last episode has closed). The four configurations run in one process,
interleaved, so the checksums on/off CPU ratio is quoted side by side. An episode that does not
balance is described with ``collector info``'s text.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import sim_config  # noqa: E402
from collector.storage.reader import format_info, open_episode  # noqa: E402
from collector.storage.ledger import MISSING_REASONS  # noqa: E402
from collector.recording.session import Session  # noqa: E402


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
    HDF5EpisodeWriter, flushing every 0.5 s of data; CPU time and throughput of the writer alone."""
    from collector.storage.writer import HDF5EpisodeWriter
    from collector.wire.protocol import Sample
    from collector.wire.streams import FieldSpec, StreamSpec

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
    writer = HDF5EpisodeWriter(path, specs, {"task": "bench"}, compression=compression,
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


def _process_cpu(session: Session) -> dict[str, psutil.Process]:
    """The rig's processes by role: ``recorder``, ``cameras``, ``glove`` (each node's own)."""
    recorder_pid = session.supervisor.recorder.process.pid
    roles: dict[str, list[psutil.Process]] = {"recorder": [psutil.Process(recorder_pid)],
                                             "cameras": [], "glove": []}
    for child in psutil.Process().children(recursive=True):
        cmdline = " ".join(child.cmdline())
        role = "cameras" if "sim_camera" in cmdline else "glove" if "sim_glove" in cmdline else None
        if role and child.pid != recorder_pid:
            roles[role].append(child)
    return roles


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def run(cameras: int, compression: str, seconds: float, out: Path, color_encoding: str = "raw",
        pre_roll_s: float | None = None, flush_interval_s: float | None = None) -> dict:
    config = sim_config(seed=0, cameras=cameras, glove_rate_hz=1000.0)
    if pre_roll_s is not None:
        config.recording.pre_roll_s = pre_roll_s
    if flush_interval_s is not None:
        config.recording.flush_interval_s = flush_interval_s
    config.recording.output = out
    config.recording.compression = compression
    config.recording.color_encoding = color_encoding
    config.recording.min_free_gb = 0.1
    with Session(config) as session:
        roles = _process_cpu(session)
        recorder = roles["recorder"][0]
        time.sleep(1.0)
        session.start_episode(task=f"bench-{cameras}cam-{compression}")
        cpu0, t0 = {role: _cpu_seconds(procs) for role, procs in roles.items()}, time.monotonic()
        threads0 = session.status()["thread_cpu_s"]
        rss = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            rss.append(recorder.memory_info().rss / 2**20)
        cpu1, t1 = {role: _cpu_seconds(procs) for role, procs in roles.items()}, time.monotonic()
        status = session.status()
        stop0 = time.perf_counter()
        result = session.stop_episode()
        stop_s = time.perf_counter() - stop0
    path = Path(result["path"])
    offered = written = 0
    data_bytes = 0
    receive_lag_ms = []
    with open_episode(path) as ep:
        for stream in ep.streams:
            times = ep.timestamps(stream)
            seq = times["seq"].astype(np.int64)
            if len(seq):
                offered += int(seq[-1] - seq[0] + 1)
                written += len(seq)
                receive_lag_ms.append((times["t_recv_ns"].astype(np.int64)
                                       - times["t_host_ns"].astype(np.int64)) / 1e6)
            data_bytes += ep.count(stream) * ep.streams[stream].bytes_per_sample
    third = max(1, len(rss) // 3)
    latency = status.get("disk_latency_ms") or {}
    live = status.get("live_disk_latency_ms") or {}
    lag = np.concatenate(receive_lag_ms) if receive_lag_ms else np.array([np.nan])
    threads = {name: (status["thread_cpu_s"][name] - threads0[name]) / (t1 - t0)
               if status["thread_cpu_s"].get(name) is not None and threads0.get(name) is not None
               else float("nan") for name in ("receiver", "writer")}
    return {
        "cameras": cameras, "compression": compression, "color": color_encoding, "stop_s": stop_s,
        "offered": offered, "written": written,
        "dropped": offered - written + status["overflow"],
        "data_MB_s": data_bytes / 2**20 / (t1 - t0),
        "file_MB_s": path.stat().st_size / 2**20 / (t1 - t0), "file_MB": path.stat().st_size / 2**20,
        "lat_p50_ms": latency.get("p50", float("nan")), "lat_p99_ms": latency.get("p99", float("nan")),
        "live_p99_ms": live.get("p99", float("nan")),
        "recv_p50_ms": float(np.percentile(lag, 50)), "recv_p99_ms": float(np.percentile(lag, 99)),
        "recorder_cpu": (cpu1["recorder"] - cpu0["recorder"]) / (t1 - t0),
        "cameras_cpu": (cpu1["cameras"] - cpu0["cameras"]) / (t1 - t0),
        "glove_cpu": (cpu1["glove"] - cpu0["glove"]) / (t1 - t0),
        "receiver_cpu": threads["receiver"], "writer_cpu": threads["writer"],
        "rss_early_MB": max(rss[:third]), "rss_late_MB": max(rss[-third:]),
    }


def _spin() -> None:
    while True:
        pass


def start_competitors(count: int) -> list[multiprocessing.Process]:
    """``count`` processes spinning on the CPU at the recorder's priority, until terminated."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    return procs


def stop_competitors(procs: list[multiprocessing.Process]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5.0)


def back_to_back(checksums: bool, episodes: int, seconds: float, glove_hz: float, out: Path) -> dict:
    """Record ``episodes`` episodes of ``seconds`` each with zero reset time; the ledger's
    account of every one, Stop -> ready times and the recorder's CPU per recorded second."""
    config = sim_config(seed=0, cameras=1, glove_rate_hz=glove_hz)
    config.recording.output = out
    config.recording.checksums = checksums
    config.recording.min_free_gb = 0.1
    uuids, ready_s, stop_s, start_s = [], [], [], []
    with Session(config) as session:
        recorder = psutil.Process(session.supervisor.recorder.process.pid)
        deadline = time.monotonic() + 30.0  # every stream live before the first Start
        while time.monotonic() < deadline:
            streams = session.status()["streams"]
            if len(streams) >= 3 and all(s["received"] > 0 for s in streams.values()):
                break
            time.sleep(0.1)
        cpu0 = recorder.cpu_times()
        session.start_episode(task="bench-ledger")
        for k in range(episodes):
            time.sleep(seconds)
            t0 = time.perf_counter()
            stopped = session.stop_episode()
            stop_s.append(time.perf_counter() - t0)
            uuids.append(stopped["uuid"])
            if k + 1 < episodes:
                t1 = time.perf_counter()
                session.start_episode(task="bench-ledger")
                ready_s.append(time.perf_counter() - t0)
                start_s.append(time.perf_counter() - t1)
        results = [session.wait_closed(uuid) for uuid in uuids]
        cpu1 = recorder.cpu_times()
    totals = {"published": 0, "written": 0, **{r: 0 for r in MISSING_REASONS}}
    balanced, books, late, outside, unbalanced, recorded_s = 0, 0, 0, 0, [], 0.0
    for k, result in enumerate(results):
        with open_episode(result["path"]) as ep:
            ledger = ep.ledger or {}
            start_ns, stop_ns = ledger.get("start_ns", 0), ledger.get("stop_ns", 0)
            recorded_s += (stop_ns - start_ns) / 1e9
            ok = bool(ledger.get("streams")) and result.get("status") != "failed"
            books += ok and all(s["balanced"] is True for s in ledger["streams"].values())
            for name, s in (ledger.get("streams") or {}).items():
                totals["published"] += s["published"] or 0
                totals["written"] += s["written"]
                for reason, n in s["missing"].items():
                    totals[reason] = totals.get(reason, 0) + n
                late += s.get("late", 0)
                ok &= s["balanced"] is True and not any(s["missing"].values())
                t = ep.timestamps(name)["t_host_ns"].astype(np.int64)
                outside += int(np.count_nonzero((t < start_ns) | (t >= stop_ns)))
            if ok:
                balanced += 1
            else:
                unbalanced.append(f"episode {k + 1} of {len(results)} (kept)\n" + format_info(ep.summary()))
        if ok:
            Path(result["path"]).unlink()
    return {**totals, "episodes": len(results), "balanced": balanced, "books": books, "late": late, "outside": outside,
            "ready_s": ready_s, "stop_s": stop_s, "start_s": start_s, "unbalanced": unbalanced,
            "cpu_per_s": ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / recorded_s,
            "recorded_s": recorded_s}


def ledger_report(args: argparse.Namespace, out: Path) -> None:
    """The ``--ledger`` table (see the module docstring)."""
    competitors = args.competitors if args.competitors is not None else os.cpu_count() or 1
    print(f"{args.episodes} back-to-back episodes x {args.seconds:g} s, 1 camera 640x480 + glove "
          f"{args.glove_hz:g} Hz; cores: {os.cpu_count()}; competitor: {competitors} spinning processes")
    print("ready: from calling stop_episode until the next start_episode has returned (stop: "
          "stop_episode alone, start: start_episode alone); episode files that balance are deleted")
    reasons = [r for r in MISSING_REASONS]
    short = {"dropped_at_device": "device", "overflow": "overflow", "rejected": "rejected",
             "receiver_failure": "recv fail", "tail_not_drained": "tail", "lost_in_transport": "transport"}
    print(f"{'competitor':>10} {'checksums':>9} {'published':>9} {'written':>8} "
          + " ".join(f"{short[r]:>9}" for r in reasons)
          + f" {'late':>6} {'outside':>7} {'books':>6} {'balance':>8} {'ready p50':>9} {'ready p99':>9} {'stop p99':>8} {'start p99':>9} {'rec CPU s/s':>11}")
    cpu: dict[tuple[str, str], float] = {}
    unbalanced = []
    for load in ("off", "on"):
        procs = start_competitors(competitors) if load == "on" else []
        try:
            for mode in args.ledger_checksums:
                r = back_to_back(mode == "on", args.episodes, args.seconds, args.glove_hz, out)
                cpu[load, mode] = r["cpu_per_s"]
                ready = np.array(r["ready_s"] or [np.nan]) * 1e3
                stop = np.array(r["stop_s"]) * 1e3
                start = np.array(r["start_s"] or [np.nan]) * 1e3
                print(f"{load:>10} {mode:>9} {r['published']:>9} {r['written']:>8} "
                      + " ".join(f"{r[x]:>9}" for x in reasons)
                      + f" {r['late']:>6} {r['outside']:>7} {100 * r['books'] / r['episodes']:>5.0f}%"
                      f" {100 * r['balanced'] / r['episodes']:>7.0f}%"
                      f" {np.percentile(ready, 50):>7.0f}ms {np.percentile(ready, 99):>7.0f}ms"
                      f" {np.percentile(stop, 99):>6.0f}ms {np.percentile(start, 99):>7.0f}ms {r['cpu_per_s']:>11.3f}", flush=True)
                unbalanced += [(load, mode, text) for text in r["unbalanced"]]
        finally:
            stop_competitors(procs)
    for load in ("off", "on"):
        if (load, "on") in cpu and (load, "off") in cpu:
            print(f"recorder CPU, checksums on / off, competitor {load}: "
                  f"{cpu[load, 'on'] / cpu[load, 'off']:.2f}x")
    for load, mode, text in unbalanced:
        print(f"\nnot balanced (competitor {load}, checksums {mode}):\n{text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--compression", nargs="+", default=["none", "lz4"])
    parser.add_argument("--out", help="folder to record into (default: a temporary folder)")
    parser.add_argument("--flush-interval", type=float, default=None,
                        help="seconds between the recorder's flushes (default: the config's)")
    parser.add_argument("--pre-roll", type=float, default=None,
                        help="seconds held before each Start (default: the config's, 3 s); the "
                             "held frames are written in one burst at the Start")
    parser.add_argument("--checksums", nargs="+", choices=["on", "off"],
                        help="instead: the episode writer's cost with checksums on and off")
    parser.add_argument("--color-encoding", nargs="+",
                        help="colour encodings to record with (default: raw; --checksums: raw jpeg)")
    parser.add_argument("--ledger", action="store_true",
                        help="instead: back-to-back episodes, with and without a CPU competitor")
    parser.add_argument("--episodes", type=int, default=5, help="--ledger: episodes per configuration")
    parser.add_argument("--glove-hz", type=float, default=1000.0, help="--ledger: glove rate")
    parser.add_argument("--competitors", type=int,
                        help="--ledger: spinning processes in the competitor (default: one per core)")
    parser.add_argument("--ledger-checksums", nargs="+", choices=["on", "off"], default=["on", "off"],
                        help="--ledger: checksum settings to record with")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="collector-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.ledger:
        ledger_report(args, out)
        return
    if args.checksums:
        print(f"episode writer alone, {args.seconds:g} s of data per run; cores: {os.cpu_count()}")
        print(f"{'cams':>4} {'codec':>5} {'color':>5} {'checksums':>9} {'CPU s/s':>8} {'MB/s':>7} {'file MB':>8}")
        for cameras in args.cameras:
            for compression in args.compression:
                for encoding in args.color_encoding or ["raw", "jpeg"]:
                    for mode in args.checksums:
                        r = checksum_cost(cameras, compression, encoding, mode == "on", args.seconds, out)
                        print(f"{cameras:>4} {compression:>5} {encoding:>5} {mode:>9} "
                              f"{r['cpu_per_s']:>8.3f} {r['MB_s']:>7.0f} {r['file_MB']:>8.1f}", flush=True)
        return
    ceiling = disk_bandwidth_mb_s(out)
    print(f"disk sequential write with fsync: {ceiling:.0f} MB/s ({out}); cores: {os.cpu_count()}; "
          f"load average before: {os.getloadavg()[0]:.1f} (the 2-camera rig alone needs ~1.1 of 2 cores: "
          "other load makes the recorder fall behind)")
    print("lat: capture to disk (the flush that wrote the sample whole: a video frame once its packet is; "
          "a pre-roll sample counts from the Start); live: the same for samples captured after the Start "
          "(not the pre-roll, written in one burst after it); recv: capture to the "
          "recorder's receive (t_recv - t_host; the rest is the writer's queue and flush cadence). "
          "CPU in CPU-seconds per recorded second: recorder (its receiver and writer threads; video "
          "encoding runs on a thread per stream, in the recorder's total only), "
          "the camera nodes together, the glove node")
    header = (f"{'cams':>4} {'codec':>5} {'color':>5} {'offered':>8} {'written':>8} {'dropped':>7} "
              f"{'file MB':>7} {'MB/s':>6} {'% disk':>6} {'lat p50':>8} {'lat p99':>8} {'live p99':>8} {'recv p99':>8} "
              f"{'rec CPU':>7} {'recv':>5} {'write':>5} {'cams':>5} {'glove':>5} "
              f"{'RSS early':>9} {'RSS late':>8} {'stop s':>6}")
    print(header)
    for cameras in args.cameras:
        for compression, encoding in [(c, e) for c in args.compression
                                      for e in args.color_encoding or ["raw"]]:
            r = run(cameras, compression, args.seconds, out, encoding, args.pre_roll, args.flush_interval)
            print(f"{r['cameras']:>4} {r['compression']:>5} {r['color']:>5} {r['offered']:>8} {r['written']:>8} "
                  f"{r['dropped']:>7} {r['file_MB']:>7.1f} {r['file_MB_s']:>6.1f} "
                  f"{100 * r['file_MB_s'] / ceiling:>5.1f}% {r['lat_p50_ms']:>6.0f}ms {r['lat_p99_ms']:>6.0f}ms {r['live_p99_ms']:>6.0f}ms "
                  f"{r['recv_p99_ms']:>6.0f}ms {r['recorder_cpu']:>7.2f} {r['receiver_cpu']:>5.2f} "
                  f"{r['writer_cpu']:>5.2f} {r['cameras_cpu']:>5.2f} {r['glove_cpu']:>5.2f} "
                  f"{r['rss_early_MB']:>8.0f}M {r['rss_late_MB']:>7.0f}M {r['stop_s']:>6.2f}",
                  flush=True)
            print(f"     load average after: {os.getloadavg()[0]:.1f}", flush=True)
            for f in out.rglob("bench-*.h5"):
                f.unlink()


if __name__ == "__main__":
    main()
