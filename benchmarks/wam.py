"""WAM figures: inference time, fine-tuning cost, skill per view, capture with the node and trainer.

    python benchmarks/wam.py                                     # inference p50/p90 on 1 and 2 threads (+ CUDA)
    python benchmarks/wam.py --data /tmp/wam-sim                 # + eval table on held-out episodes
    python benchmarks/wam.py --data /tmp/view0 --data /tmp/view3 # + one table per view (trained / held out)
    python benchmarks/wam.py --finetune /tmp/wam-station         # + what one background fine-tune costs
    python benchmarks/wam.py --station 12 --threads 1            # + a fine-tune on 12 episodes of an unseen view
    python benchmarks/wam.py --capture 20                        # + 20 s recordings: without, with the
                                                                 #   node, with the node and the trainer

``--finetune DIR`` runs the background trainer's job (collector.wam.finetune as
collector.wam.trainer_service runs it: DIR's episodes split three ways by episode, the running
checkpoint fine-tuned with early stopping, both models scored on the held-out episodes) on 1
niced thread and prints its CPU seconds per minute of recorded training data.
The third capture row records while the trainer is fine-tuning (it is given three short
episodes first, then trains through the measured one; its state at the start and end is printed).

``--station N`` writes N simulated episodes of a view the shipped checkpoint was never trained on
(view 3, overhead), splits them as the trainer does (held out, selection, training by episode),
runs the trainer's fine-tune on them and prints the held-out skill before and after, the CPU
seconds per recorded minute and whether the trainer would swap the result in.

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


def bench_inference(path: Path, threads: int, calls: int, device: str = "cpu") -> None:
    torch.set_num_threads(threads)
    checkpoint = Checkpoint.load(path)
    predictor = Predictor(checkpoint, device)
    c = checkpoint.config
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (c.context, c.image_size, c.image_size, 3), dtype=np.uint8)
    actions = np.tile(checkpoint.normalizer.mean, (c.context, 1))
    for _ in range(5):
        predictor.predict(frames, actions)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        predictor.predict(frames, actions)  # returns numpy: includes the device round trip
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    tick = 1000 / 8
    print(f"checkpoint {path.name}: {parameter_count(predictor.model) / 1e6:.2f} M parameters, "
          f"{c.image_size}x{c.image_size}, context {c.context}, K={c.horizon} "
          f"(+{c.horizons_s[0]:g} .. +{c.horizons_s[-1]:g} s), file {path.stat().st_size / 2**20:.1f} MiB")
    where = f"{threads} CPU thread{'s' if threads > 1 else ''}" if device == "cpu" else \
        f"{torch.cuda.get_device_name()} (CUDA)"
    print(f"inference on {where}, {calls} calls: p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
          f"mean {statistics.fmean(times):.1f} ms = {p50 / tick:.0%} of the 125 ms tick at 8 Hz")


def bench_eval(path: Path, data: str, max_windows: int) -> None:
    from collector.wam.data import find_episodes
    from collector.wam.evaluate import evaluate, format_report

    trained_on = {Path(p).name for p in Checkpoint.load(path).report.get("train_episodes", [])}
    held_out = [p for p in find_episodes(data) if p.name not in trained_on]
    print(f"\neval on {len(held_out)} episodes under {data} the checkpoint was not trained on")
    print(format_report(evaluate(path, held_out, max_windows=max_windows)))


def trainer_fine_tune(path: Path, paths: list[Path], steps: int | None = None):
    """One background fine-tune as the trainer runs it (its options: niced, 1 thread) on
    ``paths``, split as the trainer splits episodes saved in that order; returns the sides'
    paths, the options and the result."""
    import os

    from collector.wam.finetune import fine_tune, fine_tune_options
    from collector.wam.registry import HELD_OUT, SELECT, TRAIN, Registry
    from collector.wam.trainer_service import TrainerOptions

    o = TrainerOptions(steps=steps or TrainerOptions.steps)
    registry = Registry(Path(tempfile.gettempdir()))  # never saved: only its split rule is used
    for i, p in enumerate(paths):
        registry.note_episode(f"episode-{i}", str(p), "", o.val_fraction, o.select_fraction)
    sides = [registry.paths(side) for side in (TRAIN, SELECT, HELD_OUT)]
    os.nice(o.nice)
    torch.set_num_threads(o.threads)
    result = fine_tune(path, *sides, options=fine_tune_options(o), say=lambda _: None)
    return sides, o, result


def print_fine_tune(sides, o, result) -> None:
    print(f"  {len(sides[0])} episodes trained on, {len(sides[1])} for selection, {len(sides[2])} held out; "
          f"lr {o.lr:g}, {o.trainable} trainable, batch {o.batch_size}, at most {o.steps} steps, "
          f"selection every {o.select_every}, patience {o.patience}, {o.threads} thread, nice {o.nice}")
    print("  selection skill by step: " + ", ".join(f"{step}: {skill:+.2f}" for step, skill in result.selection))
    print(f"  kept step {result.best_step} of {result.steps}: {result.seconds:.0f} s wall, {result.cpu_seconds:.0f} "
          f"CPU s = {result.cpu_seconds_per_recorded_minute:.0f} CPU s per recorded minute of training episodes "
          f"({result.trained_minutes:.1f} min)")
    for name, v in (("running", result.running), ("fine-tuned (int8)", result.tuned)):
        print(f"  {name:18} held-out PSNR +1 s {v['psnr_1s']:.2f} dB, still frame {v['psnr_1s_copy_last']:.2f} dB: "
              f"{v['psnr_1s'] - v['psnr_1s_copy_last']:+.2f} dB")
    print(f"  swapped in (held-out skill above the running one by more than {o.min_gain_db:g} dB): "
          f"{'yes' if result.beats_running(o.min_gain_db) else 'no'}")


def bench_finetune(path: Path, data: str) -> None:
    """One background fine-tune, as the trainer runs it, on the episodes under ``data``."""
    from collector.wam.data import find_episodes

    print(f"\nfine-tune on the episodes under {data}:")
    print_fine_tune(*trainer_fine_tune(path, find_episodes(data)))


def bench_station(path: Path, episodes: int, seconds: float, steps: int | None) -> None:
    """N episodes of a station the checkpoint never saw, one background fine-tune, the swap rule."""
    from tests.collector.wam.station_episodes import STATION_VIEW, write_station_episodes

    with tempfile.TemporaryDirectory() as folder:
        started = time.process_time()
        paths = write_station_episodes(Path(folder), episodes, seconds)
        written = time.process_time() - started
        print(f"\nstation fine-tune: view {STATION_VIEW} (held out of the shipped checkpoint's training), "
              f"{episodes} simulated episodes of {seconds:g} s (written in {written:.0f} CPU s)")
        print_fine_tune(*trainer_fine_tune(path, paths, steps))


def bench_capture(path: Path, seconds: float) -> None:
    from collector.config import ServiceConfig, sim_config
    from collector.storage.reader import open_episode
    from collector.recording.session import Session
    from collector.wire.bus import node_endpoints, request

    print(f"\ncapture, {seconds:g} s episodes, one 640x480 RGB-D camera at 30 fps + 200 Hz glove:")
    print(f"{'':26}{'samples':>9}{'missing':>9}{'late frames':>13}{'capture->recorder p50/p99 ms':>31}")
    for wam, trainer in ((False, False), (True, False), (True, True)):
        with tempfile.TemporaryDirectory() as out:
            config = sim_config(seed=1)
            config.recording.output = Path(out)
            if wam:
                from collector.wam.node import service_config
                config.services.append(service_config(checkpoint=str(path)))
            if trainer:  # trains through the measured episode: many steps, a time limit past it
                config.services.append(ServiceConfig("wam-trainer", "collector.wam.trainer_service", options={
                    "steps": 100000, "patience": 100000, "max_minutes": (seconds + 60) / 60, "poll_s": 0.5}))
            trainer_state = []
            with Session(config) as session:
                if trainer:  # a held-out, a selection and a training episode start the first fine-tune
                    for _ in range(3):
                        session.start_episode()
                        time.sleep(4.0)
                        session.stop_episode()
                    ctl = node_endpoints(session.supervisor.service_endpoints["wam-trainer"]).ctl
                    deadline = time.monotonic() + 60
                    while request(ctl, "status")["state"] != "training" and time.monotonic() < deadline:
                        time.sleep(0.5)
                time.sleep(2.0)  # the node loads and warms up before the episode starts
                if trainer:
                    trainer_state.append(request(ctl, "status")["state"])
                session.start_episode()
                time.sleep(seconds)
                result = session.stop_episode()
                if trainer:
                    trainer_state.append(request(ctl, "status")["state"])
            with open_episode(result["path"]) as episode:
                summary = episode.summary()["streams"]
                samples = sum(summary[s]["count"] for s in ("cam0/color", "glove/hand"))
                missing = sum(summary[s]["missing"] for s in ("cam0/color", "glove/hand"))
                t = episode.timestamps("cam0/color")
                latency = (t["t_recv_ns"] - t["t_host_ns"]) / 1e6
                trigger_ns = int(episode.attrs["trigger_ns"])
                after = t["t_host_ns"] >= trigger_ns
                early = after & (t["t_host_ns"] < trigger_ns + 2e9)
                gaps = np.diff(t["t_host_ns"]) / 1e6
                late = int((gaps > 1.5 * 1000 / 30).sum())
                surprise = episode.count("wam/surprise") if "wam/surprise" in episode.streams else 0
        name = "with WAM node + trainer" if trainer else "with WAM node" if wam else "without"
        print(f"{name:26}{samples:>9}{missing:>9}{late:>13}"
              f"{np.percentile(latency, 50):>19.1f} / {np.percentile(latency, 99):.1f}"
              + f"   pre-roll p99 {np.percentile(latency[~after], 99) if (~after).any() else float('nan'):.1f}"
              + f", first 2 s {np.percentile(latency[early], 99):.1f}, rest {np.percentile(latency[after & ~early], 99):.1f}"
              + (f"   ({surprise} surprise samples recorded)" if wam else "")
              + (f"; trainer {' -> '.join(trainer_state)}" if trainer else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED)
    parser.add_argument("--threads", default="1,2", help="CPU thread counts to time, e.g. 1,2")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--data", action="append", default=[],
                        help="episodes folder for an eval table (repeat: one per view)")
    parser.add_argument("--finetune", help="episodes folder: time one background fine-tune on it")
    parser.add_argument("--max-windows", type=int, default=2000)
    parser.add_argument("--capture", type=float, default=0, help="seconds per capture episode")
    parser.add_argument("--station", type=int, default=0,
                        help="N simulated episodes of a view the checkpoint never saw: one background fine-tune")
    parser.add_argument("--station-seconds", type=float, default=20.0, help="seconds per --station episode")
    parser.add_argument("--station-steps", type=int, help="at most this many steps (default: the trainer's)")
    args = parser.parse_args()
    for threads in (int(t) for t in args.threads.split(",")):
        bench_inference(args.checkpoint, threads, args.calls)
    if torch.cuda.is_available():
        bench_inference(args.checkpoint, 1, args.calls, "cuda")
    for data in args.data:
        bench_eval(args.checkpoint, data, args.max_windows)
    if args.finetune:
        bench_finetune(args.checkpoint, args.finetune)
    if args.station:
        bench_station(args.checkpoint, args.station, args.station_seconds, args.station_steps)
    if args.capture:
        bench_capture(args.checkpoint, args.capture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
