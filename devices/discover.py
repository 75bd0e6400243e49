"""Find the devices attached to this machine: ``python -m devices.discover`` prints them as JSON.

Each driver family contributes one finder function, named here as ``"module:function"`` and
imported lazily, so a missing SDK only affects its own family. A finder returns a list of dicts
(at least ``kind``, ``name`` and ``id``: what to put in a config to open that device) and raises
nothing for "none found"; an SDK that cannot be imported is reported as that family's ``error``.
``collector devices`` runs this module in a subprocess, since the core may not import SDKs.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

#: Device family -> finder, ``"module:function"`` returning ``list[dict]``.
FINDERS: dict[str, str] = {
    "realsense": "devices.realsense.discover:find_cameras",
    "serial": "devices.glove.discover:find_gloves",
}


def discover(families: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the finders; returns ``{family: {"devices": [...]} | {"error": "..."}}``."""
    found: dict[str, dict[str, Any]] = {}
    for family, target in FINDERS.items():
        if families and family not in families:
            continue
        module, _, attr = target.partition(":")
        try:
            finder = getattr(importlib.import_module(module), attr)
            found[family] = {"devices": finder()}
        except Exception as exc:  # an absent SDK or a failing bus is that family's problem only
            found[family] = {"error": f"{type(exc).__name__}: {exc}"}
    return found


def main(argv: list[str] | None = None) -> int:
    families = (argv if argv is not None else sys.argv[1:]) or None
    json.dump(discover(families), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
