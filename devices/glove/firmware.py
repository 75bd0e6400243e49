"""Glove firmware simulator: the protocol of ``docs/glove-protocol.md`` on a real pseudo-terminal.

    python -m devices.glove.firmware --link /tmp/glove0 --rate 1000 --seed 3

creates a pty pair, points the symlink ``--link`` at its slave end (a tty path any serial
program can open, e.g. ``Glove`` with ``port = "/tmp/glove0"``) and writes the scripted operator
of :mod:`devices.sim_world` onto it at ``--rate`` Hz, so a simulated camera with the same seed
and epoch shows the same hand. It answers HELLO with DESCRIBE and sends DESCRIBE once a second.

It runs as its own process (a writer thread inside the reader's process suffers the GIL: 37 ms
p99 instead of 3-4 ms). Faults are commanded as JSON lines on stdin (:class:`FirmwareProcess`
wraps this): ``{"cmd": "garbage", "n": 300}``, ``truncate``, ``bad_crc`` (``n`` frames),
``burst`` (hold ``n`` frames, then write them at once), ``unplug`` (close the pty for ``s``
seconds, then plug in again at the same link; ``"reboot": true`` restarts seq and clock), and
``baud`` (the firmware's own rate: when the host's tty speed differs, the host reads garbage, as
a real UART at the wrong baud rate would).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.sim_clock import DeviceClock
from devices.sim_world import FINGER_NAMES, JOINT_NAMES, World
from devices.glove import wire

BAUD_CONSTANTS = {b: getattr(termios, f"B{b}") for b in
                  (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000)
                  if hasattr(termios, f"B{b}")}
DESCRIBE_INTERVAL_S = 1.0


def layout_for(num_joints: int = 15, rate_hz: float = 1000.0, hand: str = "right",
               serial: str = "SIMFW-0") -> wire.ChannelLayout:
    """The channels the simulated firmware declares (the same as ``sim_glove``'s fields)."""
    C = wire.Channel
    channels = (
        C("wrist_pos", "<f4", 3, "m", ("x", "y", "z"), -1.0, 1.0),
        C("wrist_quat", "<f4", 4, "", ("w", "x", "y", "z"), -1.0, 1.0),
        C("finger_joints", "<f4", num_joints, "rad", tuple(JOINT_NAMES[:num_joints]), -1.0, 3.0),
        C("grip", "<f4", 1, "m", ("aperture",), 0.0, 0.08),
        C("pressure", "<f4", 5, "N", FINGER_NAMES, 0.0, 20.0),
        C("buttons", "|u1", 2, "", ("record", "deadman"), 0, 1),
        C("imu_gyro", "<f4", 3, "rad/s", ("x", "y", "z"), -35.0, 35.0),
        C("imu_accel", "<f4", 3, "m/s^2", ("x", "y", "z"), -160.0, 160.0),
    )
    info = {"model": "SimGlove-FW", "serial": serial, "firmware": "1.0.0", "hand": hand,
            "protocol": wire.PROTOCOL_VERSION}
    return wire.ChannelLayout(channels, float(rate_hz), info)


@dataclass
class FirmwareOptions:
    link: str
    rate_hz: float = 1000.0
    seed: int = 0
    epoch_ns: int = 0
    num_joints: int = 15
    hand: str = "right"
    mode: str = "binary"           # binary | csv
    baud: int = 921600
    drift_ppm: float = 0.0
    #: The send buffer in bytes (0: one second of output). A real glove's is smaller, but the
    #: USB host stack (ACM read URBs, a 64 KB tty flip buffer) holds more than a pty's ~20 KB,
    #: and on a loaded machine the simulator itself may be descheduled and then write a late
    #: burst: neither should look like the glove losing data.
    tx_buffer: int = 0


class Firmware:
    """The simulator's main loop (one thread: pacing, writing, requests and fault commands)."""

    def __init__(self, options: FirmwareOptions) -> None:
        self.o = options
        self.world = World(options.seed, options.epoch_ns)
        self.layout = layout_for(options.num_joints, options.rate_hz, options.hand,
                                 f"SIMFW-{options.seed}-{options.hand}")
        self.period_ns = 1e9 / options.rate_hz
        self.master = -1
        self.tty = ""
        self._boot()
        self.baud = options.baud
        self._garbage = np.random.default_rng([options.seed, 99])
        self._held: list[bytes] = []   # frames held back for a burst
        self._burst_left = 0
        self._bad_crc_left = 0
        self._truncate_left = 0
        self._plug_at: float | None = None
        self._host_baud_ok = True
        self._next_baud_check = 0.0
        self.written = self.dropped = 0
        self._tx = bytearray()
        frame_bytes = len(wire.encode_packet(wire.SAMPLE, 0, 0, bytes(self.layout.payload_size)))
        self.tx_buffer = options.tx_buffer or max(32768, round(options.rate_hz * frame_bytes))
        self._requests = wire.GloveFrameParser(opened_mid_stream=False)

    def _boot(self) -> None:
        self.seq = 0
        self.clock = DeviceClock(time.time_ns(), 0, self.o.drift_ppm)  # micros() from power-on

    # -- the pty ----------------------------------------------------------------------------------

    def plug(self) -> None:
        self.master, slave = os.openpty()
        # Raw before anything is written, or early bytes echo back to us. Then let go of the
        # slave: the master sees POLLHUP while no host has the port open, which serves as DTR.
        tty.setraw(slave)
        self.tty = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self._hangup = select.poll()
        self._hangup.register(self.master, select.POLLIN)
        temp = f"{self.o.link}.{os.getpid()}.tmp"
        os.symlink(self.tty, temp)
        os.replace(temp, self.o.link)  # atomic: readers never see a missing link while plugged
        self._host_baud_ok = True
        self._next_baud_check = 0.0

    def unplug(self) -> None:
        self._tx.clear()
        if self.master >= 0:
            os.close(self.master)
        self.master = -1
        try:
            os.unlink(self.o.link)
        except FileNotFoundError:
            pass

    # -- output -----------------------------------------------------------------------------------

    def _frame(self, kind: int, seq: int, t_us: int, payload: bytes) -> bytes:
        if self.o.mode == "csv":
            return b"#describe " + payload + b"\n" if kind == wire.DESCRIBE else payload
        return wire.encode_packet(kind, seq, t_us, payload)

    def _sample_frame(self, true_ns: int) -> bytes:
        s = self.world.state_at_ns(true_ns)
        values = {"wrist_pos": s.wrist_pos, "wrist_quat": s.wrist_quat,
                  "finger_joints": s.finger_joints[:self.o.num_joints], "grip": s.grip,
                  "pressure": s.pressure, "buttons": s.buttons, "imu_gyro": s.imu_gyro,
                  "imu_accel": s.imu_accel}
        t_us = self.clock.device_ns(true_ns) // 1000
        seq, self.seq = self.seq, self.seq + 1
        if self.o.mode == "csv":
            return wire.csv_line(self.layout, seq, t_us, values)
        frame = wire.encode_packet(wire.SAMPLE, seq, t_us, self.layout.encode(values))
        if self._bad_crc_left:
            self._bad_crc_left -= 1
            raw = bytearray(frame)
            raw[len(raw) // 2] ^= 0x5A if raw[len(raw) // 2] not in (0, 0x5A) else 0x33
            frame = bytes(raw)
        if self._truncate_left:
            self._truncate_left -= 1
            frame = frame[:len(frame) // 2]  # cut off mid-frame, no delimiter
        return frame

    def describe_frame(self) -> bytes:
        return self._frame(wire.DESCRIBE, self.seq, self.clock.device_ns(time.time_ns()) // 1000,
                           self.layout.to_json().encode())

    def write(self, data: bytes) -> None:
        if self.master < 0:
            return
        if self._burst_left:
            self._held.append(data)
            self._burst_left -= 1
            if self._burst_left:
                return
            data, self._held = b"".join(self._held), []
        if len(self._tx) + len(data) > self.tx_buffer:
            self.dropped += len(data)  # the firmware's send buffer is full: the frame is lost
        else:
            self._tx += data
        self.flush()

    def host_connected(self) -> bool:
        """Whether a host has the port open (a USB CDC device sees this as DTR)."""
        if self.master < 0:
            return False
        events = self._hangup.poll(0)
        return not (events and events[0][1] & select.POLLHUP)

    def flush(self) -> None:
        """Move what the pty takes from the firmware's send buffer (like a USB CDC endpoint).

        While no host has the port open the output is discarded, like firmware that checks
        DTR (Arduino's ``if (Serial)``): a host that opens the port gets fresh samples, not a
        backlog from before it was there.
        """
        if self.master < 0 or not self._tx:
            return
        if not self.host_connected():
            self._tx.clear()
            return
        # Garbled as it goes out, as on a UART: a frame queued before the host changed its
        # speed must not reach it intact (the check is one syscall, right before the write).
        self._next_baud_check = 0.0
        self._check_host_baud(time.monotonic())
        out = self._tx if self._host_baud_ok else \
            self._garbage.integers(0, 256, len(self._tx), dtype=np.uint8).tobytes()
        try:
            n = os.write(self.master, out)
        except (BlockingIOError, OSError):
            n = 0  # the host is not reading: the pty buffer (~20 KB) is full
        del self._tx[:n]
        self.written += n

    def _check_host_baud(self, now: float) -> None:
        if now < self._next_baud_check or self.master < 0:
            return
        self._next_baud_check = now + 0.0005  # a syscall: cheap enough for every tick
        try:
            speed = termios.tcgetattr(self.master)[5]  # a pty's master reports the slave's speed
        except termios.error:
            return
        # 38400 is a fresh pty's speed: nobody has configured the port yet, nothing to garble.
        self._host_baud_ok = speed in (BAUD_CONSTANTS.get(self.baud, speed), termios.B38400)

    # -- input ------------------------------------------------------------------------------------

    def _host_request(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        # A HELLO frame (binary) or a "?" line (csv) asks for the describe.
        if self.o.mode == "csv":
            asked = b"?" in data
        else:
            asked = any(p.type == wire.HELLO for p in self._requests.feed(data))
        if asked:
            # The answer goes ahead of queued samples (at a frame boundary), as firmware that
            # answers from its receive interrupt would; behind a full buffer it would be late.
            frame = self.describe_frame()
            if self._burst_left or not self._tx or not self._host_baud_ok:
                self.write(frame)
                return
            end = self._tx.find(b"\n" if self.o.mode == "csv" else wire.DELIMITER) + 1
            self._tx[end:end] = frame
            self.flush()

    def command(self, line: str) -> bool:
        """Apply one JSON command line; False to stop."""
        try:
            cmd = json.loads(line)
        except ValueError:
            print(f"bad command {line!r}", file=sys.stderr, flush=True)
            return True
        kind = cmd.get("cmd")
        n = int(cmd.get("n", 1))
        if kind == "stop":
            return False
        if kind == "garbage":
            # Random bytes with the zeros removed: no accidental delimiter, so the frame after
            # the garbage must be found by the parser's resynchronisation.
            junk = self._garbage.integers(1, 256, n, dtype=np.uint8).tobytes()
            self.write(junk)
        elif kind == "bad_crc":
            self._bad_crc_left += n
        elif kind == "truncate":
            self._truncate_left += n
        elif kind == "burst":
            self._burst_left = n
        elif kind == "baud":
            self.baud = int(cmd["value"])
            self._next_baud_check = 0.0
        elif kind == "unplug":
            self.unplug()
            if cmd.get("reboot"):
                self._boot()
            self._plug_at = time.monotonic() + float(cmd.get("s", 0.5))
        else:
            print(f"unknown command {kind!r}", file=sys.stderr, flush=True)
        print(json.dumps({"done": kind}), flush=True)
        return True

    # -- main loop --------------------------------------------------------------------------------

    def run(self) -> None:
        parent = os.getppid()
        self.plug()
        print(json.dumps({"ready": self.o.link, "tty": self.tty}), flush=True)
        epoch = self.o.epoch_ns
        index = int((time.time_ns() - epoch) // self.period_ns) + 1
        next_describe = time.monotonic()
        stdin = sys.stdin.fileno()
        while True:
            due_ns = epoch + round(index * self.period_ns)
            wait_s = max(0.0, (due_ns - time.time_ns()) / 1e9)
            host = self.host_connected()
            watch = ([stdin] if stdin >= 0 else []) + ([self.master] if host else [])
            ready, _, _ = select.select(watch, [], [], wait_s)
            if stdin >= 0 and stdin in ready:
                line = sys.stdin.readline()
                if not line:  # started in the background (stdin at EOF): no commands, keep going
                    stdin = -1
                elif not self.command(line):
                    break
            if host and self.master in ready:
                self._host_request()
            now = time.monotonic()
            if self._plug_at is not None and now >= self._plug_at:
                self._plug_at = None
                self.plug()
                print(json.dumps({"replugged": self.tty}), flush=True)
            if os.getppid() != parent:
                break  # whoever started us is gone
            self._check_host_baud(now)
            self.flush()
            if now >= next_describe:
                next_describe = now + DESCRIBE_INTERVAL_S
                self.write(self.describe_frame())
            now_ns = time.time_ns()
            while epoch + round(index * self.period_ns) <= now_ns:
                frame = self._sample_frame(epoch + round(index * self.period_ns))
                if self.master >= 0:
                    self.write(frame)
                index += 1
        self.unplug()


class FirmwareProcess:
    """Runs the simulator in a child process and sends it fault commands (tests, benchmarks).

    Use as a context manager; :attr:`link` is the tty path to open.
    """

    def __init__(self, link: str | Path, **options) -> None:
        self.link = str(link)
        args = [sys.executable, "-m", "devices.glove.firmware", "--link", self.link]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"firmware simulator exited with {self.process.wait()}")
        self.tty = json.loads(line)["tty"]

    def send(self, cmd: str, **params) -> dict:
        """Send one command and wait until the simulator has applied it."""
        self.process.stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("firmware simulator exited")
            reply = json.loads(line)
            if reply.get("done") == cmd:
                return reply

    def wait_replugged(self, timeout_s: float = 5.0) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError("simulated glove was not plugged in again")
        return json.loads(self.process.stdout.readline())["replugged"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(3)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass

    def __enter__(self) -> "FirmwareProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devices.glove.firmware", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--link", required=True, help="symlink to create, pointing at the tty")
    parser.add_argument("--rate-hz", "--rate", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-ns", type=int, default=0)
    parser.add_argument("--num-joints", type=int, default=15)
    parser.add_argument("--hand", choices=("right", "left"), default="right")
    parser.add_argument("--mode", choices=("binary", "csv"), default="binary")
    parser.add_argument("--baud", type=int, default=921600, choices=sorted(BAUD_CONSTANTS))
    parser.add_argument("--drift-ppm", type=float, default=0.0)
    parser.add_argument("--tx-buffer", type=int, default=0,
                        help="send buffer in bytes (default: one second of output)")
    args = parser.parse_args(argv)
    firmware = Firmware(FirmwareOptions(**{k: v for k, v in vars(args).items()}))
    try:
        firmware.run()
    except KeyboardInterrupt:
        pass
    finally:
        firmware.unplug()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
