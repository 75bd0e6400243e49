"""Validate driver options without opening any device: ``python -m devices.check '[{...}]'``.

Reads a JSON list of ``{"name", "driver", "options"}`` and prints a JSON list of error messages
(empty when all are valid), each the driver config's exact message, e.g.
``cam0.options: unknown option 'fsp' (known: ...)``. The core and the GUI call it in a child
process (see :func:`collector.recording.supervisor.check_node_options`), since they may not import drivers.
"""

from __future__ import annotations

import json
import sys

from collector.wire.device import DeviceError
from collector.wire.options import ConfigError, from_mapping

from devices.registry import driver_class


def check(nodes: list[dict]) -> list[str]:
    errors = []
    for node in nodes:
        name = node.get("name", "?")
        try:
            cls = driver_class(node.get("driver", ""))
            from_mapping(cls.Config, node.get("options") or {}, where=f"{name}.options")
        except (ConfigError, ValueError, DeviceError) as exc:  # DeviceError: its SDK is broken
            errors.append(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc))
    return errors


if __name__ == "__main__":
    json.dump(check(json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())), sys.stdout)
