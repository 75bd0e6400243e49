"""Validate driver options without opening any device: ``python -m devices.check '[{...}]'``.

``python -m devices.check --rates '[{...}]'`` prints ``{node: bytes/s}`` instead (see
:func:`data_rates`).

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


def data_rates(nodes: list[dict]) -> dict[str, float]:
    """``{node: bytes/s}`` its declared streams produce at their nominal rates (uncompressed),
    from the drivers' declarations before connecting; a node whose driver cannot load is left out.
    ``collector doctor`` compares their sum with the disk's measured write speed."""
    rates = {}
    for node in nodes:
        try:
            device = driver_class(node.get("driver", ""))(node.get("name", "?"), node.get("options") or {})
            rates[node["name"]] = sum(s.rate_hz * s.bytes_per_sample for s in device.streams())
        except Exception:  # noqa: BLE001 (an SDK or a device the doctor reports elsewhere)
            continue
    return rates


if __name__ == "__main__":
    args = sys.argv[1:]
    task = data_rates if args[:1] == ["--rates"] else check
    args = args[1:] if args[:1] == ["--rates"] else args
    json.dump(task(json.loads(args[0] if args else sys.stdin.read())), sys.stdout)
