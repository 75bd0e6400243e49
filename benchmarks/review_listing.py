"""Review speed: listing a folder of episodes with and without the summary cache, and the time
from opening an episode to its first frame shown.

    python benchmarks/review_listing.py                  # 1,000 episodes, 640x480 open test
    python benchmarks/review_listing.py --episodes 200 --keep /tmp/review-bench

Listing: one synthetic episode (2 s, 30 fps 160x120 JPEG camera, 200 Hz glove) is copied N times
into a fresh folder; the first scan opens every file (summary, quality report, thumbnail), the
second comes from ``.collector-review/summaries.json``; ``collector ls`` is timed end to end
(a new process: interpreter start and imports included). First frame: a 10 s episode with one
640x480 camera (raw and JPEG) and a 200 Hz glove, opened by the Qt-free playback model, and by
the review window's player up to the image on screen (Qt offscreen platform).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_folder(folder: Path, episodes: int) -> Path:
    from collector.review.synthetic import write_synthetic_episode

    source = write_synthetic_episode(folder / "source.h5", duration_s=2, width=160, height=120,
                                     color_encoding="jpeg", idle_start_s=0.5,
                                     attrs={"task": "pick-cube", "operator": "ana"})
    for i in range(episodes):
        day = folder / "pick-cube" / f"2026-01-{1 + i // 100:02d}"
        day.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, day / f"pick-cube_{i:04d}.h5")
    source.unlink()
    return folder


def listing(folder: Path, episodes: int) -> None:
    from collector.review import EpisodeCatalog

    size = sum(p.stat().st_size for p in folder.rglob("*.h5"))
    print(f"listing {episodes} episodes ({size / 1e6:.0f} MB) in {folder}")
    uncached, first = timed(lambda: EpisodeCatalog(folder).scan())
    cached, again = timed(lambda: EpisodeCatalog(folder).scan(), repeat=3)
    no_cache, _ = timed(lambda: EpisodeCatalog(folder, use_cache=False).scan())
    assert len(first) == len(again) == episodes
    cache_mb = (folder / ".collector-review" / "summaries.json").stat().st_size / 1e6
    cli, _ = timed(lambda: subprocess.run([sys.executable, "-m", "collector.cli", "ls", str(folder)],
                                          cwd=ROOT, capture_output=True, check=True), repeat=3)
    print(f"  first scan (opens every file, writes the cache)  {uncached:7.2f} s  "
          f"({uncached / episodes * 1e3:.1f} ms per episode)")
    print(f"  no cache at all                                  {no_cache:7.2f} s")
    print(f"  from the cache ({cache_mb:.1f} MB JSON)                  {cached:7.3f} s  "
          f"-> {uncached / cached:.0f}x faster than the first scan")
    print(f"  `collector ls` end to end, cached                {cli:7.2f} s")
    shown = window_listing(folder, episodes)
    print(f"  review window, cached: open folder -> table and dashboard filled {shown:5.2f} s")


def window_listing(folder: Path, episodes: int) -> float:
    from PySide6 import QtCore, QtWidgets

    from ui import theme
    from ui.review.window import QtReviewWidget

    QtCore.qInstallMessageHandler(lambda *_: None)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    theme.configure_pyqtgraph()
    widget = QtReviewWidget()
    widget.resize(1500, 900)
    widget.show()
    app.processEvents()
    start = time.perf_counter()
    widget.open_folder(folder)
    while widget.model.rowCount() < episodes:
        app.processEvents(QtCore.QEventLoop.AllEvents, 5)
    app.processEvents()  # painted
    elapsed = time.perf_counter() - start
    widget.close()
    return elapsed


def first_frame(folder: Path) -> None:
    from PySide6 import QtCore, QtWidgets

    from collector.review.playback import EpisodePlayback
    from collector.review.synthetic import write_synthetic_episode
    from ui import theme
    from ui.review.player import QtEpisodePlayer

    QtCore.qInstallMessageHandler(lambda *_: None)  # the offscreen platform's size-hint chatter
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    theme.configure_pyqtgraph()
    player = QtEpisodePlayer()
    player.resize(1000, 800)
    player.show()
    app.processEvents()
    print("time from opening an episode to its first frame (10 s, 640x480 camera, 200 Hz glove; medians of 5)")
    for encoding in ("raw", "jpeg"):
        path = write_synthetic_episode(folder / f"open-{encoding}.h5", duration_s=10, width=640, height=480,
                                       color_encoding=encoding, surprise_peaks_s=[3.0, 7.0])

        def core():
            with EpisodePlayback(path) as playback:
                return playback.frame(0)

        def gui():
            player.load(str(path))
            app.processEvents()  # the frame is on screen once the event loop has painted it
            return player.cameras.items["cam0/color"].image

        core_s, frame = timed(core, repeat=5)
        player.unload()
        player._layout = None  # as in a fresh window: the plot rows are built, not reused
        first_s, _ = timed(gui)
        gui_s, image = timed(gui, repeat=5)
        assert frame["cam0/color"].shape == image.shape == (480, 640, 3)
        print(f"  {encoding:<5} playback model {core_s * 1e3:5.1f} ms   window player, image painted: "
              f"first episode {first_s * 1e3:5.1f} ms, next (same streams) {gui_s * 1e3:5.1f} ms   "
              f"file {path.stat().st_size / 1e6:.1f} MB")
        player.unload()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--keep", help="build the folder here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        if folder.exists() and any(folder.rglob("*.h5")):
            shutil.rmtree(folder / ".collector-review", ignore_errors=True)
        else:
            make_folder(folder, args.episodes)
        listing(folder, sum(1 for _ in folder.rglob("*.h5")))
        first_frame(Path(tempfile.mkdtemp(prefix="review-open-")))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
