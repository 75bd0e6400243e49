"""What a recorder killed at a random moment after a Start loses, with a full pre-roll held.

Records the app's simulator (``station_sim_config``: H.264 colour, Blosc2 depth, 3 s pre-roll)
with 2 cameras and a 1 kHz glove; waits until the pre-roll is full, starts an episode, SIGKILLs
the recorder a random time after ``start_episode`` returned, and prints, per kill, how far
before the kill each stream's last sample on disk was captured ("lost"). The promise is at most
the last second; docs/reliability.md ("Known limits") quotes these figures.

    python benchmarks/crash_window.py --kills 12 --seed 31
    python benchmarks/crash_window.py --kills 8 --after 1.5 3.0 --flush-interval 0.5
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.config import station_sim_config  # noqa: E402
from collector.recording.session import Session  # noqa: E402
from collector.storage.reader import open_episode  # noqa: E402


def kill_once(seed: int, after_s: float, flush_interval_s: float | None, raw: bool) -> dict[str, float]:
    """Seconds lost per stream when the recorder is killed ``after_s`` after a Start."""
    with tempfile.TemporaryDirectory() as out:
        config = station_sim_config(seed=seed, cameras=2, glove_rate_hz=1000.0)
        if raw:
            config.recording.color_encoding, config.recording.compression = "raw", "none"
            config.recording.stream_encodings = {}
        if flush_interval_s is not None:
            config.recording.flush_interval_s = flush_interval_s
        config.recording.output, config.recording.min_free_gb = Path(out), 0.01
        session = Session(config)
        session.open()
        try:
            time.sleep(config.recording.pre_roll_s + 1.0)  # the pre-roll fills
            path = Path(session.start_episode()["path"])
            time.sleep(after_s)
            recorder = session.supervisor.recorder.process
            t_kill = time.time_ns()
            os.kill(recorder.pid, signal.SIGKILL)
            recorder.wait()
        finally:
            session.close()
        with open_episode(path) as episode:
            start = int(episode.attrs["start_time_ns"])
            lost = {}
            for stream in episode.streams:
                host = episode.timestamps(stream)["t_host_ns"]
                lost[stream] = (t_kill - (int(host[-1]) if len(host) else start)) / 1e9
        return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--after", type=float, nargs=2, default=(0.3, 3.0), metavar=("MIN", "MAX"),
                        help="seconds after start_episode returned, drawn uniformly (default 0.3 3.0)")
    parser.add_argument("--flush-interval", type=float, default=None,
                        help="recording.flush_interval_s (default: the config's)")
    parser.add_argument("--raw", action="store_true", help="raw colour, no compression")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    worst = 0.0
    for k in range(args.kills):
        after = rng.uniform(*args.after)
        lost = kill_once(k, after, args.flush_interval, args.raw)
        worst = max(worst, *lost.values())
        print(f"kill {after:.2f} s after the start: lost " +
              ", ".join(f"{stream} {s:.2f} s" for stream, s in sorted(lost.items())), flush=True)
    print(f"worst {worst:.2f} s")


if __name__ == "__main__":
    main()
