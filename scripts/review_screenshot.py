"""Render the review window (episodes tab and dashboard) to PNGs, as a lab manager would see it.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/review_screenshot.py shots/ --dir recordings/

Without ``--dir`` a demo folder of synthetic episodes (several tasks, operators and days, planted
defects, a damaged file, a WAM surprise trace) is written to a temporary folder first. Without a
display it falls back to Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DAY_NS = 86_400 * 10**9


def demo_folder(root: Path) -> Path:
    """Synthetic episodes over three days, with defects to review."""
    from collector.review.synthetic import T0_NS, write_synthetic_episode

    plan = [("pick-cube", "ana", "success", {}), ("pick-cube", "ana", "success", {"idle_start_s": 2.0}),
            ("pick-cube", "bo", "failure", {"gap": (2.0, 0.3)}), ("pick-cube", "bo", "unknown", {}),
            ("wipe-table", "ana", "success", {"stall": (3.0, 0.5)}), ("wipe-table", "cy", "unknown", {}),
            ("wipe-table", "cy", "success", {"disconnect_at_s": 2.5}), ("stack-blocks", "bo", "success", {}),
            ("stack-blocks", "ana", "failure", {"idle_end_s": 1.8}), ("pick-cube", "cy", "success", {})]
    for i, (task, operator, outcome, faults) in enumerate(plan):
        start = T0_NS + (i // 4) * DAY_NS + i * 600 * 10**9
        write_synthetic_episode(root / task / f"{task}_{i:02d}.h5", duration_s=4 + (i % 3) * 1.5,
                                width=320, height=240, surprise_peaks_s=[1.8, 3.1],
                                attrs={"task": task, "operator": operator, "station": f"bench-{1 + i % 2}",
                                       "outcome": outcome, "tags": '["demo"]' if i % 3 == 0 else "[]"},
                                start_ns=start, **faults)
    good = root / "pick-cube" / "pick-cube_00.h5"
    (root / "pick-cube" / "half-written.h5").write_bytes(good.read_bytes()[:good.stat().st_size // 3])
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for review.png and dashboard.png")
    parser.add_argument("--dir", help="episodes folder (default: a synthetic demo)")
    parser.add_argument("--size", default="1600x980")
    parser.add_argument("--select", default="pick-cube_02", help="open the first episode whose name has this")
    args = parser.parse_args()

    from PySide6 import QtWidgets

    from ui import theme
    from ui.review.window import QtReviewWindow

    root = Path(args.dir) if args.dir else demo_folder(Path(tempfile.mkdtemp(prefix="review-shot-")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QtWidgets.QApplication(sys.argv[:1])
    theme.apply(app)
    window = QtReviewWindow(root)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    review = window.review
    deadline = time.monotonic() + 120
    while not review.model.summaries and time.monotonic() < deadline:
        pump(0.1)
    target = next((s.path for s in review.model.summaries if args.select in Path(s.path).name),
                  review.model.summaries[0].path if review.model.summaries else None)
    if target:
        review.select_path(target)
    pump(0.5)
    review.player.seek_time(2.2)
    pump(0.5)
    window.grab().save(str(out / "review.png"))
    review.detail_tabs.setCurrentWidget(review.quality)
    pump(0.3)
    window.grab().save(str(out / "quality.png"))
    review.tabs.setCurrentWidget(review.dashboard)
    pump(0.5)
    window.grab().save(str(out / "dashboard.png"))
    print(f"wrote {out / 'review.png'}, {out / 'quality.png'}, {out / 'dashboard.png'}")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
