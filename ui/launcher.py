"""The ``collector`` command: the GUI when given no command (or ``gui``), else the headless CLI.

The core (``collector.cli``) may not import Qt, so this small entry point in ``ui`` decides:
``collector`` and ``collector --config X`` open the collect window, ``collector gui ...`` too;
every other command goes to :func:`collector.cli.main` without loading Qt.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gui"]:
        argv = argv[1:]
    elif argv and not argv[0].startswith("-") or any(a in ("-h", "--help", "--version") for a in argv):
        from collector.cli import main as cli_main

        return cli_main(argv)
    from ui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
