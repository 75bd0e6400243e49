"""EpisodeDataset samples/s with 0 and 2 DataLoader workers, LeRobot's own loader on the same
episodes, and export MB/s per format.

    python benchmarks/dataset_throughput.py --episodes 4 --seconds 10

Writes simulated episodes (640x480 camera at 30 fps, 200 Hz glove, in simulated time) to a
temporary folder, then times, side by side in one run: iterating an ``EpisodeDataset`` (224x224
images, action chunks of 16) through a DataLoader with 0 and 2 workers, and each export. Export
MB/s is the source episodes' size over the export's wall time (read + convert + write).

    python benchmarks/dataset_throughput.py --lerobot-python /tmp/peers/lerobot/bin/python

LeRobot's side: the LeRobot export of the same episodes (as exported, 640x480) is read with
``LeRobotDataset`` (pyav video backend) through a DataLoader with 2 workers, batch 8, by the
python of LeRobot's own venv (``--lerobot-python`` or ``LEROBOT_PYTHON``; the current python when
it imports lerobot; scripts/peer_check.sh builds such a venv), in a subprocess, between two
runs of EpisodeDataset (float32 images, 2 workers; the machine's load drifts), and the ratio of
their mean to LeRobot's items/s is printed against the target of at least 4x (issue 16), as is
the ratio with ``uint8_images=True``. Each loader is timed in wall time and in CPU time (its
process and workers): on a shared, loaded machine the wall-time figures swing with the others'
load, the CPU-time figures are each loader's own cost.
Without LeRobot the peer side is skipped with a message. Both sides are timed the same way: from
creating the DataLoader (workers starting included) to the last of ``--samples`` items.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "collector")]

from torch.utils.data import DataLoader  # noqa: E402

from collector.dataset import EpisodeDataset  # noqa: E402
from collector.export.aloha import export_aloha  # noqa: E402
from collector.export.lerobot import export_lerobot  # noqa: E402
from collector.export.robomimic import export_robomimic  # noqa: E402
from collector.export.selection import SignalMapping  # noqa: E402
from sim_episodes import write_sim_episode  # noqa: E402


#: Times a DataLoader: items/s of wall time, and items per CPU-second of the loading process and
#: its workers (RUSAGE_CHILDREN counts workers once they are joined). On a shared, loaded machine
#: wall time says mostly how much CPU the others left over; CPU time per item is the loader's own
#: cost. Shared, as source, with LeRobot's side (it runs in LeRobot's python).
TIMING = """
import resource, time
def cpu_s():
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
def time_loader(loader, limit, count):
    start, cpu, seen = time.perf_counter(), cpu_s(), 0
    batches = iter(loader)
    for batch in batches:
        seen += count(batch)
        if seen >= limit:
            break
    wall = time.perf_counter() - start
    del batches  # joins the workers, so that their CPU time is counted
    return {"items_per_s": seen / wall, "items_per_cpu_s": seen / (cpu_s() - cpu), "items": seen}
"""
exec(TIMING)


def samples_per_s(ds: EpisodeDataset, workers: int, batch: int, limit: int) -> dict[str, float]:
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=False)
    return time_loader(loader, limit, lambda item: item["action"].shape[0])  # noqa: F821 (TIMING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=600, help="samples timed per setting")
    parser.add_argument("--lerobot-python", default=os.environ.get("LEROBOT_PYTHON"),
                        help="python of a venv with lerobot (default: $LEROBOT_PYTHON, else this "
                             "python if it imports lerobot)")
    parser.add_argument("--loaders-only", action="store_true",
                        help="time the loaders only (the LeRobot export they need, not the others)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rec"
        t0 = time.perf_counter()
        for i in range(args.episodes):
            write_sim_episode(folder / f"ep{i}.h5", seed=i, seconds=args.seconds, width=640,
                              height=480, epoch_offset_s=1 + 3 * i)
        source_mb = sum(f.stat().st_size for f in folder.glob("*.h5")) / 1e6
        page_in(folder)
        print(f"{args.episodes} episodes x {args.seconds:g} s, 640x480 @ 30 fps + 200 Hz glove: "
              f"{source_mb:.0f} MB (written in {time.perf_counter() - t0:.0f} s)")
        mapping = SignalMapping(image_size=(224, 224))
        ds = EpisodeDataset([folder], mapping=mapping, horizon=16)
        ds8 = EpisodeDataset([folder], mapping=mapping, horizon=16, uint8_images=True)
        print(f"EpisodeDataset: {len(ds)} samples, 224x224 images, horizon 16, batch 32")
        rates = {"float32, 0 workers": samples_per_s(ds, 0, 32, args.samples),
                 "float32, 2 workers": samples_per_s(ds, 2, 32, args.samples)}
        for name, rate in rates.items():
            print(f"  DataLoader {name}: {rate_text(rate)}")
        python = lerobot_python(args.lerobot_python)
        with tempfile.TemporaryDirectory(dir=tmp) as out:
            result = export_lerobot([folder], Path(out) / "le", mapping=SignalMapping(),
                                    show_progress=False)
            print(f"  export lerobot av1   {source_mb / result.seconds:6.1f} MB/s of episodes "
                  f"({result.seconds:5.1f} s, output {result.bytes_written / 1e6:6.1f} MB)")
            theirs = lerobot_side(result.path, args.samples, python)
        # Ours again on both sides of LeRobot's run: the machine's load drifts between runs.
        rates["float32, 2 workers (again)"] = samples_per_s(ds, 2, 32, args.samples)
        rates["uint8, 2 workers"] = samples_per_s(ds8, 2, 32, args.samples)
        for name in ("float32, 2 workers (again)", "uint8, 2 workers"):
            print(f"  DataLoader {name}: {rate_text(rates[name])}")
        if theirs:
            both = [rates["float32, 2 workers"], rates["float32, 2 workers (again)"]]
            ours = {k: sum(r[k] for r in both) / 2 for k in both[0]}
            for name, rate in (("float32 images", ours), ("uint8 images", rates["uint8, 2 workers"])):
                for key, what in (("items_per_s", "wall"), ("items_per_cpu_s", "CPU")):
                    ratio = rate[key] / theirs[key]
                    verdict = "meets" if ratio >= 4 else "MISSES"
                    print(f"  EpisodeDataset ({name}, 224x224, 2 workers) / LeRobot loader, per "
                          f"{what} second: {ratio:.1f}x: {verdict} the 4x target")
        if args.loaders_only:
            return
        exports = [("robomimic", lambda out: export_robomimic([folder], out / "d.hdf5",
                                                              mapping=mapping, show_progress=False)),
                   ("aloha", lambda out: export_aloha([folder], out / "act", mapping=SignalMapping(),
                                                      show_progress=False)),
                   ("lerobot h264", lambda out: export_lerobot([folder], out / "le264", vcodec="h264",
                                                               mapping=SignalMapping(),
                                                               show_progress=False))]
        for name, run in exports:
            with tempfile.TemporaryDirectory(dir=tmp) as out:
                result = run(Path(out))
                print(f"  export {name:<13} {source_mb / result.seconds:6.1f} MB/s of episodes "
                      f"({result.seconds:5.1f} s, output {result.bytes_written / 1e6:6.1f} MB)")


def page_in(folder: Path) -> None:
    """Flush the episodes just written and read them once, untimed: the first timed pass then
    reads from the page cache, as LeRobot's side reads its just-written export, instead of
    competing with the kernel writing ~2 GB back to disk (measured: 65 samples/s in that first
    pass, 349 in the next)."""
    os.sync()
    for path in folder.glob("*.h5"):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


#: Run by LeRobot's python: its own loader over its export, timed like samples_per_s above.
LEROBOT_LOADER = TIMING + """
import json, sys
from torch.utils.data import DataLoader
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, limit = sys.argv[1], int(sys.argv[2])
dataset = LeRobotDataset("local/collector-benchmark", root=root, video_backend="pyav")
loader = DataLoader(dataset, batch_size=8, shuffle=True, num_workers=2)
print(json.dumps(time_loader(loader, limit, lambda item: item["index"].shape[0])))
"""


def lerobot_python(given: str | None) -> str | None:
    """The python to run LeRobot's loader with, or None when there is none."""
    if given:
        return given
    try:
        import lerobot  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def rate_text(rate: dict[str, float]) -> str:
    return (f"{rate['items_per_s']:7.0f} samples/s, {rate['items_per_cpu_s']:7.0f} samples per "
            f"CPU-second")


def lerobot_side(root: Path, limit: int, python: str | None) -> dict[str, float] | None:
    """LeRobot's own loader over its export of the same episodes, timed like ours (None:
    skipped)."""
    if python is None:
        print("  LeRobot loader: skipped, lerobot is not installed here; pass --lerobot-python "
              "(e.g. the venv scripts/peer_check.sh builds) to compare")
        return None
    run = subprocess.run([python, "-c", LEROBOT_LOADER, str(root), str(limit)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"  LeRobot loader: failed ({python}):\n{run.stderr[-2000:]}")
        return None
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"  LeRobot loader (as exported 640x480, float32, 2 workers, batch 8): {rate_text(theirs)}")
    return theirs


if __name__ == "__main__":
    main()
