"""Where a node listens: one base endpoint gives its ``data``, ``live`` and ``ctl`` sockets.

Kept apart from :mod:`collector.wire.bus` so that :mod:`collector.wire.security` can map a node's
endpoints to its key without importing the bus (which imports security).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeEndpoints:
    data: str
    live: str
    ctl: str


def node_endpoints(base: str) -> NodeEndpoints:
    """The three endpoints of a node: ``ipc://X`` gives ``ipc://X.data`` ...; ``tcp://H:P``
    gives ports P, P+1 and P+2."""
    if base.startswith("ipc://"):
        return NodeEndpoints(f"{base}.data", f"{base}.live", f"{base}.ctl")
    if base.startswith("tcp://"):
        host, _, port = base[len("tcp://"):].rpartition(":")
        if not port.isdigit():
            raise ValueError(f"tcp endpoint '{base}' needs an explicit port, e.g. tcp://127.0.0.1:5550")
        p = int(port)
        return NodeEndpoints(f"tcp://{host}:{p}", f"tcp://{host}:{p + 1}", f"tcp://{host}:{p + 2}")
    raise ValueError(f"endpoint '{base}' must start with ipc:// or tcp://")


def new_runtime_dir() -> str:
    """A fresh private folder for one session's ipc sockets (short: ipc paths max ~100 chars)."""
    return tempfile.mkdtemp(prefix=f"collector-{os.getpid()}-{uuid.uuid4().hex[:6]}-")


def default_endpoint(runtime_dir: str, node: str) -> str:
    return f"ipc://{os.path.join(runtime_dir, node)}"
