"""A wearable rig at its rated load (a script: prints figures, asserts nothing).

A head camera (the ``uvc`` driver on a 1280x720 MJPG video at 30 fps that this script writes,
played in real time through VideoCapture, as a camera would deliver it), a simulated glove at
1 kHz and one simulated RealSense-like camera, each node its own process, into the recorder with
the 3 s pre-roll. After ``--warmup`` seconds one episode of ``--seconds``; then per stream the
ledger (published, written, missing), the pre-roll's memory before the press, and the CPU of each
process over the episode.

Run: ``python benchmarks/wearable_rig.py --seconds 20`` (``taskset -c 0,1`` for 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from collector.config import AppConfig, NodeConfig, RecordingConfig, SessionInfo  # noqa: E402
from collector.recording.live import LiveFeed  # noqa: E402
from collector.recording.session import Session  # noqa: E402
from collector.wire.bus import node_endpoints  # noqa: E402
from collector.storage.ledger import read_ledger  # noqa: E402
from collector.storage.reader import open_episode, validate_episode  # noqa: E402


def write_head_video(path: Path, seconds: float = 4.0) -> Path:
    """A 1280x720 MJPG video with moving content (so the JPEGs are not trivially small)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (1280, 720))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (720, 1280, 3), np.uint8)
    for i in range(int(seconds * 30)):
        writer.write(np.roll(base, 8 * i, axis=1))
    writer.release()
    return path


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--color-encoding", default="jpeg", choices=["raw", "jpeg"])
    parser.add_argument("--decode", action="store_true",
                        help="decode the head camera's frames in the node (and re-encode them in the "
                             "recorder with --color-encoding jpeg), as before store_jpeg on files")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wearable-rig-"))
    video = write_head_video(folder / "head.avi")
    epoch = time.time_ns()
    config = AppConfig(
        # The file's MJPG frames pass through as they are, as a camera's do with store_jpeg: no
        # decode in the node, no re-encode in the recorder (--decode measures the other way).
        nodes=[NodeConfig("head", "uvc", options={"source": str(video), "loop": True, **(
                   {} if args.decode else {"fourcc": "MJPG", "store_jpeg": True})}),
               NodeConfig("glove", "sim_glove", options={"rate_hz": 1000.0, "epoch_ns": epoch}),
               NodeConfig("cam0", "sim_camera", options={"epoch_ns": epoch})],
        recording=RecordingConfig(output=folder / "rec", min_free_gb=0.0, pre_roll_s=3.0,
                                  color_encoding=args.color_encoding, master_stream="head/color"),
        session=SessionInfo(glove_record_button=False))
    with Session(config) as session:
        time.sleep(args.warmup)  # a benchmark: the rig runs, then the press comes
        pre_roll = session.status()["pre_roll"]
        pids = {name: child.process.pid for name, child in session.supervisor.nodes.items()}
        pids["recorder"] = session.supervisor.recorder.process.pid
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        # Where a stream falls behind: its lag at the recorder (capture to receipt) against its
        # lag at a second subscriber on the nodes' live endpoints (this process, nearly idle).
        live = LiveFeed([node_endpoints(b).live for b in session.supervisor.node_bases.values()])
        lag_ms: dict[str, list[float]] = {}
        started = session.start_episode()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
            latest, now = live.latest(), time.time_ns()
            for name, s in session.status()["streams"].items():
                worst = lag_ms.setdefault(name, [0.0, 0.0])
                worst[0] = max(worst[0], s["latency_ms"])
                if name in latest:
                    worst[1] = max(worst[1], (now - latest[name].t_host_ns) / 1e6)
        live.close()
        stopped = session.stop_episode()
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        stopped.update(session.wait_closed(stopped["uuid"]))
    path = stopped["path"]
    print(f"episode {path}: {(t1 - t0):.1f} s after the press, "
          f"{(started['trigger_ns'] - started['start_ns']) / 1e9:.1f} s of pre-roll before it")
    print(f"pre-roll before the press: {pre_roll}")
    print(f"validate: {validate_episode(path) or 'ok'}")
    with open_episode(path) as ep:
        ledger = read_ledger(ep.h5.attrs)
    for name, books in ledger["streams"].items():
        missing = {k: v for k, v in books["missing"].items() if v}
        print(f"  {name:12s} published {books['published']:6d} written {books['written']:6d} "
              f"missing {missing or 0}")
    print("worst lag over the episode (ms): at the recorder / at a live subscriber")
    for name, (at_recorder, at_live) in sorted(lag_ms.items()):
        print(f"  {name:12s} {at_recorder:8.0f} / {at_live:8.0f}")
    print("CPU over the episode (% of one core):")
    for name in pids:
        print(f"  {name:12s} {100 * (cpu1[name] - cpu0[name]) / (t1 - t0):6.1f}")


if __name__ == "__main__":
    main()
