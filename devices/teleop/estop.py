"""Send a teleop e-stop (or its reset) from the command line or from code.

    python -m devices.teleop.estop ipc:///tmp/collector/estop            # latch the e-stop
    python -m devices.teleop.estop ipc:///tmp/collector/estop --reset    # clear it

Binds a publisher at the endpoint (list it in the teleop node's ``estop_endpoints``) and repeats
the event every 0.1 s for ``--seconds``: a subscriber that connects late (ZeroMQ's slow joiner)
still gets it, and the teleop node latches on the first one it sees.
"""

from __future__ import annotations

import argparse
import time

from collector.wire.bus import NodePublisher
from collector.wire.protocol import Describe

from devices.teleop.node import estop_event


class EstopSender:
    """A bound publisher for e-stop events (e.g. a GUI's e-stop button keeps one open)."""

    def __init__(self, endpoint: str, node: str = "estop") -> None:
        self.node = node
        self.publisher = NodePublisher(endpoint, Describe(node=node, streams=[]))

    def send(self, kind: str = "estop", reason: str = "", seconds: float = 1.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.publisher.send(estop_event(self.node, kind, reason))
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.publisher.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.teleop.estop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("endpoint")
    parser.add_argument("--reset", action="store_true", help="clear the e-stop instead")
    parser.add_argument("--reason", default="e-stop button")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    sender = EstopSender(args.endpoint)
    try:
        sender.send("estop_reset" if args.reset else "estop", args.reason, args.seconds)
    finally:
        sender.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
