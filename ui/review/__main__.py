"""``python -m ui.review [DIR]``: the review window on a folder of episodes (``collector review``).

    python -m ui.review recordings/
"""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collector review", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", default="recordings", help="folder of episodes (default: recordings)")
    args = parser.parse_args(argv)

    from PySide6 import QtCore, QtWidgets

    from .. import theme
    from .window import QtReviewWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("collector review")
    theme.apply(app)
    window = QtReviewWindow(args.dir)
    window.show()
    signal.signal(signal.SIGINT, lambda *_: window.close())
    keepalive = QtCore.QTimer()
    keepalive.start(200)  # lets Python run its signal handlers while Qt's loop runs
    keepalive.timeout.connect(lambda: None)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
