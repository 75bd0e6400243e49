"""Run one driver as a device node: ``python -m devices DRIVER --name NAME --endpoint ENDPOINT``.

    python -m devices sim_camera --name cam0 --endpoint ipc:///tmp/x/cam0 --options '{"fps": 30}'
    python -m devices sim_glove --name glove --endpoint ipc:///tmp/x/glove --options '{"rate_hz": 1000}' --node-options '{"batch_window_ms": 2}'

The driver comes from the registry (devices/registry.py); the node runtime is
:class:`collector.wire.node.Node`. A driver whose SDK is missing or broken exits with status 2
and one line naming the SDK; the other drivers are unaffected.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import zmq

from collector.wire.device import DeviceError
from collector.wire.node import RESTART_REASON_ENV, Node, NodeOptions, run_until_signalled
from collector.wire.options import from_mapping
from collector.wire.security import CurveServer
from devices.registry import DRIVERS, driver_class


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("driver", choices=sorted(DRIVERS))
    parser.add_argument("--name", required=True, help="node name, the prefix of its streams")
    parser.add_argument("--endpoint", required=True, help="base endpoint, ipc://PATH or tcp://HOST:PORT")
    parser.add_argument("--options", default="{}", help="driver options as a JSON object")
    parser.add_argument("--node-options", default="{}",
                        help="how the node publishes, as a JSON object (collector.wire.node."
                             "NodeOptions: batch_window_ms, batch_min_rate_hz, batch_max_samples)")
    parser.add_argument("--curve-secret", help="this node's CurveZMQ secret key file (collector keys): "
                        "encrypt, and admit only the clients in --curve-authorized")
    parser.add_argument("--curve-authorized", help="folder of the public keys (*.key) of the apps "
                        "allowed to connect")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a plain tcp:// bind beyond loopback (trusted networks only)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    curve = None
    try:
        if args.curve_secret or args.curve_authorized:
            if not (args.curve_secret and args.curve_authorized):
                raise ValueError("--curve-secret and --curve-authorized go together")
            curve = CurveServer(args.curve_secret, args.curve_authorized)
        node_options = from_mapping(NodeOptions, json.loads(args.node_options),
                                    where="--node-options")
        device = driver_class(args.driver)(args.name, json.loads(args.options))
        if args.endpoint.startswith("ipc://"):  # its folder, as a user would expect
            folder = os.path.dirname(args.endpoint[len("ipc://"):])
            try:
                os.makedirs(folder or ".", exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cannot create the folder {folder} of --endpoint "
                                 f"{args.endpoint} ({exc.strerror})") from None
        node = Node(device, args.endpoint, curve=curve, insecure=args.insecure,
                    restart_reason=os.environ.pop(RESTART_REASON_ENV, ""), options=node_options)
    except (ValueError, DeviceError, zmq.ZMQError) as exc:  # SecurityError is a ValueError
        if curve is not None:
            curve.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_until_signalled(node)
    finally:
        if curve is not None:
            curve.stop()


if __name__ == "__main__":
    sys.exit(main())
