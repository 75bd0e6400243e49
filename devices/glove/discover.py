"""Find serial gloves: every USB serial port with its VID/PID, and what answers the HELLO.

``collector devices serial`` prints this. Ports without a USB id (built-in UARTs, ptys) are not
probed unless named in ``$COLLECTOR_GLOVE_PORTS`` (``os.pathsep``-separated paths; pyserial's
``comports()`` never lists ptys, so that is how a simulated glove shows up here).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devices.glove import wire

PROBE_S = 1.2
PROBE_BAUDRATES = (921600,)


def probe(port: str, baudrate: int = 921600, timeout_s: float = PROBE_S) -> dict[str, Any] | None:
    """The DESCRIBE of a glove on ``port`` (binary or CSV mode), or ``None`` if none answers."""
    import serial

    try:
        link = serial.Serial(port, baudrate, timeout=0.05)
    except (serial.SerialException, OSError, ValueError):
        return None
    binary, csv = wire.GloveFrameParser(), wire.CsvLineParser()
    try:
        link.write(wire.encode_packet(wire.HELLO, 0, 0) + b"\n?\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            data = link.read(max(1, link.in_waiting))
            for mode, parser in (("binary", binary), ("csv", csv)):
                for packet in parser.feed(data):
                    if packet.type == wire.DESCRIBE:
                        try:
                            layout = wire.ChannelLayout.from_json(packet.payload)
                        except wire.GloveProtocolError:
                            continue
                        return {"mode": mode, "baudrate": baudrate, "rate_hz": layout.rate_hz,
                                **layout.info,
                                "channels": {c.name: c.count for c in layout.channels}}
    except (serial.SerialException, OSError):
        return None
    finally:
        link.close()
    return None


def find_gloves() -> list[dict[str, Any]]:
    """Every USB serial port (and ``$COLLECTOR_GLOVE_PORTS``), probed in parallel.

    Each entry has ``kind`` ("glove" when something answered the HELLO, else "serial-port"),
    ``name``, ``id`` (the path to put in ``port``), the USB ids as hex strings where known and,
    for a glove, its DESCRIBE identity (``model``, ``serial``, ``firmware``, ``hand``), ``mode``,
    ``baudrate``, ``rate_hz`` and ``channels`` (``"name:count,..."``).
    """
    from serial.tools import list_ports

    ports: list[dict[str, Any]] = []
    for p in list_ports.comports():
        if p.vid is None:
            continue
        ports.append({"id": p.device, "vid": f"{p.vid:04x}", "pid": f"{p.pid:04x}",
                      "serial_number": p.serial_number or "", "description": p.description,
                      "manufacturer": p.manufacturer or ""})
    extra = [x for x in os.environ.get("COLLECTOR_GLOVE_PORTS", "").split(os.pathsep) if x]
    ports += [{"id": path, "vid": "", "pid": "", "serial_number": "", "description": "pty",
               "manufacturer": ""} for path in extra]
    if not ports:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(ports))) as pool:
        answers = list(pool.map(lambda port: probe(port["id"]), ports))
    found = []
    for port, glove in zip(ports, answers):
        usb = {k: v for k, v in port.items() if v and k != "id"}
        if glove is None:
            found.append({"kind": "serial-port", "name": port["description"] or port["id"],
                          "id": port["id"], **usb})
            continue
        name = f"{glove.get('model', 'glove')} {glove.get('serial', '')}".strip()
        channels = ",".join(f"{k}:{v}" for k, v in glove.pop("channels").items())
        found.append({"kind": "glove", "name": name, "id": port["id"], **usb, **glove,
                      "channels": channels})
    return found
