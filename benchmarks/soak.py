"""Soak: one long episode with 2 simulated RGB-D cameras and a 1 kHz glove, through the real
processes and sockets. Prints RSS of every process early vs late (must stay flat), drops
(seq gaps, writer-queue overflow) in the recorder's status and in the file, and validates it.

    python benchmarks/soak.py --minutes 30            # the release soak
    python benchmarks/soak.py --minutes 5 --output /tmp/soak

RSS is sampled every ``--interval`` seconds from /proc; "early" is the median of the samples in
the second minute (after start-up allocations settle), "late" the median of the last minute.
Exit status 1 if a check fails: any drop, an invalid file, or an RSS growth over ``--max-growth-mb``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.config import sim_config  # noqa: E402
from collector.storage.reader import open_episode, validate_episode  # noqa: E402
from collector.recording.session import Session  # noqa: E402


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` from /proc (Linux), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--output", help="recordings folder (default: a temporary one, deleted "
                        "afterwards: 30 min of raw RGB-D is ~150 GB)")
    parser.add_argument("--compression", default="lz4", choices=["none", "lz4", "zstd"])
    parser.add_argument("--color-encoding", default="raw", choices=["raw", "jpeg"],
                        help="jpeg: a tenth of the disk bandwidth (for disks slower than ~100 MB/s)")
    parser.add_argument("--max-growth-mb", type=float, default=64.0,
                        help="late minus early median RSS allowed (the recorder's RSS swings by "
                        "tens of MB with its flush buffers)")
    args = parser.parse_args()

    output = Path(args.output or tempfile.mkdtemp(prefix="collector-soak-"))
    config = sim_config(seed=11, cameras=2, glove_rate_hz=1000.0)
    config.recording.output = output
    config.recording.compression = args.compression
    config.recording.color_encoding = args.color_encoding
    config.recording.min_free_gb = 0.1
    rss: dict[str, list[tuple[float, float]]] = {}
    started = time.monotonic()
    with Session(config) as session:
        processes = {name: child.process.pid for name, child in session.supervisor.nodes.items()}
        processes["recorder"] = session.supervisor.recorder.process.pid
        episode = session.start_episode(task="soak")
        print(f"soak: {args.minutes:g} min, 2 cameras + 1 kHz glove, {args.compression}, "
              f"color {args.color_encoding}, "
              f"-> {episode['path']}", flush=True)
        end = started + args.minutes * 60
        status = {}
        while time.monotonic() < end:
            time.sleep(args.interval)
            t = time.monotonic() - started
            status = session.status()
            if not status["recording"]:
                print(f"FAIL: recording stopped: {status['error']}")
                return 1
            for name, pid in processes.items():
                value = rss_mb(pid)
                if value is not None:
                    rss.setdefault(name, []).append((t, value))
            if int(t) % 60 < args.interval:
                print(f"  {t / 60:5.1f} min  recorder RSS {rss['recorder'][-1][1]:.0f} MB  "
                      f"queued {status['queued_mb']:.1f} MB  overflow {status['overflow']}", flush=True)
        result = session.stop_episode()
        final = session.status()
    path = Path(result["path"])

    failures = []
    print(f"\n{'process':<10}{'RSS early MB':>14}{'RSS late MB':>13}{'growth MB':>11}"
          f"{'min-max after 1 min':>22}{'trend MB/min':>14}")
    for name, samples in rss.items():
        early = [v for t, v in samples if 60 <= t < 120] or [samples[0][1]]
        late = [v for t, v in samples if t >= samples[-1][0] - 60]
        growth = statistics.median(late) - statistics.median(early)
        settled = [(t, v) for t, v in samples if t >= 60] or samples
        trend = (statistics.linear_regression([t / 60 for t, _ in settled], [v for _, v in settled]).slope
                 if len(settled) > 2 else 0.0)
        spread = f"{min(v for _, v in settled):.0f}-{max(v for _, v in settled):.0f}"
        print(f"{name:<10}{statistics.median(early):>14.1f}{statistics.median(late):>13.1f}{growth:>11.1f}"
              f"{spread:>22}{trend:>14.1f}")
        if growth > args.max_growth_mb:
            failures.append(f"{name} RSS grew {growth:.1f} MB")

    problems = validate_episode(path)
    print(f"\nfile {path} ({path.stat().st_size / 1e9:.2f} GB): "
          f"{'valid' if not problems else 'INVALID: ' + '; '.join(problems)}")
    failures += problems
    print(f"{'stream':<16}{'count':>9}{'rate Hz':>9}{'gaps':>6}{'missing':>9}{'overflow':>9}")
    with open_episode(path) as ep:
        for name, s in ep.summary()["streams"].items():
            print(f"{name:<16}{s['count']:>9}{s['measured_rate_hz']:>9.1f}{s['gaps']:>6}"
                  f"{s['missing']:>9}{s['overflow']:>9}")
            if s["gaps"] or s["missing"] or s["overflow"]:
                failures.append(f"{name}: {s['gaps']} gaps, {s['missing']} missing, {s['overflow']} overflow")
    print(f"recorder: overflow {final['overflow']}, malformed {final['malformed']}, "
          f"flush p50/p99 {final['flush_ms']}")
    print("\n" + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    if not args.output:
        shutil.rmtree(output, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
