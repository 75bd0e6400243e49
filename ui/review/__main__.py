"""``python -m ui.review [DIR]``: the review window on a folder of episodes (``collector review``).

    python -m ui.review recordings/
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collector review", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", default="recordings", help="folder of episodes (default: recordings)")
    args = parser.parse_args(argv)

    from ui.app import application, run_window
    from ui.review.window import QtReviewWindow

    app = application("collector review")
    return run_window(app, QtReviewWindow(args.dir))


if __name__ == "__main__":
    raise SystemExit(main())
