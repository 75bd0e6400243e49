"""WAM figures: inference time on 2 CPU threads, the eval table, and capture with the node on/off.

    python benchmarks/wam.py                                     # inference p50/p90, shipped checkpoint
    python benchmarks/wam.py --data /tmp/wam-sim                 # + eval table on held-out episodes
    python benchmarks/wam.py --capture 20                        # + 20 s recordings without/with the node

Inference is timed on one window at a time (what the live node does), after warm-up, with
``torch.set_num_threads(--threads)``; the figure beside it is the node's tick at 8 Hz (125 ms).
``--capture`` records the simulated camera and glove twice, side by side in one run: without
the WAM node and with it at 8 Hz, and prints missing samples, late frames (a gap over 1.5
frame periods) and the latency from capture to the recorder receiving the frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.wam.checkpoint import Checkpoint, Predictor  # noqa: E402
from collector.wam.model import parameter_count  # noqa: E402

SHIPPED = ROOT / "collector" / "wam" / "checkpoints" / "sim.pt"


def bench_inference(path: Path, threads: int, calls: int) -> None:
    torch.set_num_threads(threads)
    checkpoint = Checkpoint.load(path)
    predictor = Predictor(checkpoint)
    c = checkpoint.config
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (c.context, c.image_size, c.image_size, 3), dtype=np.uint8)
    actions = np.tile(checkpoint.normalizer.mean, (c.context, 1))
    for _ in range(5):
        predictor.predict(frames, actions)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        predictor.predict(frames, actions)
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    tick = 1000 / 8
    print(f"checkpoint {path.name}: {parameter_count(predictor.model) / 1e6:.2f} M parameters, "
          f"{c.image_size}x{c.image_size}, context {c.context}, K={c.horizon} "
          f"(+{c.horizons_s[0]:g} .. +{c.horizons_s[-1]:g} s), file {path.stat().st_size / 2**20:.1f} MiB")
    print(f"inference on {threads} CPU threads, {calls} calls: p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
          f"mean {statistics.fmean(times):.1f} ms = {p50 / tick:.0%} of the 125 ms tick at 8 Hz")


def bench_eval(path: Path, data: str, max_windows: int) -> None:
    from collector.wam.data import find_episodes
    from collector.wam.evaluate import evaluate, format_report

    trained_on = {Path(p).name for p in Checkpoint.load(path).report.get("train_episodes", [])}
    held_out = [p for p in find_episodes(data) if p.name not in trained_on]
    print(f"\neval on {len(held_out)} episodes under {data} the checkpoint was not trained on")
    print(format_report(evaluate(path, held_out, max_windows=max_windows)))


def bench_capture(path: Path, seconds: float) -> None:
    from collector.config import sim_config
    from collector.storage.reader import open_episode
    from collector.recording.session import Session

    print(f"\ncapture, {seconds:g} s episodes, one 640x480 RGB-D camera at 30 fps + 200 Hz glove:")
    print(f"{'':18}{'samples':>9}{'missing':>9}{'late frames':>13}{'capture->recorder p50/p99 ms':>31}")
    for wam in (False, True):
        with tempfile.TemporaryDirectory() as out:
            config = sim_config(seed=1)
            config.recording.output = Path(out)
            if wam:
                from collector.wam.node import service_config
                config.services.append(service_config(checkpoint=str(path)))
            with Session(config) as session:
                time.sleep(2.0)  # the node loads and warms up before the episode starts
                session.start_episode()
                time.sleep(seconds)
                result = session.stop_episode()
            with open_episode(result["path"]) as episode:
                summary = episode.summary()["streams"]
                samples = sum(summary[s]["count"] for s in ("cam0/color", "glove/hand"))
                missing = sum(summary[s]["missing"] for s in ("cam0/color", "glove/hand"))
                t = episode.timestamps("cam0/color")
                latency = (t["t_recv_ns"] - t["t_host_ns"]) / 1e6
                gaps = np.diff(t["t_host_ns"]) / 1e6
                late = int((gaps > 1.5 * 1000 / 30).sum())
                surprise = episode.count("wam/surprise") if "wam/surprise" in episode.streams else 0
        name = "with WAM node" if wam else "without"
        print(f"{name:18}{samples:>9}{missing:>9}{late:>13}"
              f"{np.percentile(latency, 50):>19.1f} / {np.percentile(latency, 99):.1f}"
              + (f"   ({surprise} surprise samples recorded)" if wam else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--data", help="episodes folder for the eval table")
    parser.add_argument("--max-windows", type=int, default=2000)
    parser.add_argument("--capture", type=float, default=0, help="seconds per capture episode")
    args = parser.parse_args()
    bench_inference(args.checkpoint, args.threads, args.calls)
    if args.data:
        bench_eval(args.checkpoint, args.data, args.max_windows)
    if args.capture:
        bench_capture(args.checkpoint, args.capture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
