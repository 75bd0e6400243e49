"""Find the devices attached to this machine: ``python -m devices.discover [FAMILY...]`` prints
them as JSON.

    python -m devices.discover realsense serial

Each driver with a finder in the registry (devices/registry.py) contributes one family. A finder
returns a list of dicts (at least ``kind``, ``name`` and ``id``: what to put in a config to open
that device) and raises nothing for "none found"; a missing or broken SDK, or a failing bus, is
reported as that family's ``error`` and the other families are still searched.
``collector devices`` runs this module in a subprocess, since the core may not import SDKs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from devices.registry import DriverUnavailable, families, load_finder


def discover(wanted: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the finders; returns ``{family: {"devices": [...]} | {"error": "..."}}``."""
    found: dict[str, dict[str, Any]] = {}
    for family, driver in families().items():
        if wanted and family not in wanted:
            continue
        try:
            found[family] = {"devices": load_finder(driver)()}
        except DriverUnavailable as exc:
            found[family] = {"error": str(exc)}
        except Exception as exc:  # a failing bus is that family's problem only
            found[family] = {"error": f"{type(exc).__name__}: {exc}"}
    return found


def main(argv: list[str] | None = None) -> int:
    wanted = (argv if argv is not None else sys.argv[1:]) or None
    json.dump(discover(wanted), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
