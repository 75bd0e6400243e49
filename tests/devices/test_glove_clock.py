"""A glove whose clock is absurd (far too slow, or jumping) is reported in words and keeps
streaming on host time; the serial reader thread never dies silently (issue 13, item 7)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from collector.wire.bus import Subscriber, node_endpoints
from collector.wire.protocol import Event, Sample
from collector.wire.device import DeviceDisconnected
from devices.glove.clock import OnlineClockMap
from devices.glove.firmware import FirmwareProcess
from devices.glove.node import Glove
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_a_slow_clock_is_reported_and_mapped_on_host_time():
    clock = OnlineClockMap()
    t0 = 1_700_000_000_000_000_000
    out, notices = [], []
    for i in range(10_000):  # 10 s at 1 kHz of real time; the glove's clock runs at 0.3x
        rx = t0 + i * 1_000_000 + 200_000
        out.append(clock.map(int(i * 1_000_000 * 0.3), rx))
        notices += clock.notices()
        assert -2 ** 31 <= clock.drift_ppb_int32() < 2 ** 31
    assert notices and notices[0][0] == "error"
    assert notices[0][1].startswith("glove clock runs at 0.30x real time")
    assert len(notices) == 1  # said once, not per sample
    assert np.all(np.diff(out) >= 0)
    # After the fault: host receive times (the glove's times would be 3.3x too slow).
    assert out[-1] == t0 + 9_999 * 1_000_000 + 200_000


def test_a_jump_is_reported_and_the_estimate_starts_again():
    clock = OnlineClockMap()
    t0 = 1_700_000_000_000_000_000
    notices = []
    for i in range(6000):
        device = i * 1_000_000 + (50_000_000_000 if i >= 3000 else 0)  # +50 s at 3 s
        clock.map(device, t0 + i * 1_000_000 + 100_000)
        notices += clock.notices()
    assert [k for k, _ in notices] == ["error"]
    assert "glove clock jumped by +50.001 s" in notices[0][1]
    assert clock.fault is None and clock.map(6000 * 1_000_000 + 50_000_000_000,
                                             t0 + 6000 * 1_000_000 + 100_000) <= t0 + 6000 * 1_000_000 + 100_000


def collect(glove: Glove, seconds: float) -> list:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += glove.read(0.1)
    return out


def test_a_glove_at_030x_real_time_keeps_streaming_and_says_why(tmp_path):
    with FirmwareProcess(tmp_path / "glove0", rate_hz=500, drift_ppm=-700_000) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        try:
            readings, events = [], []

            def reported():
                readings.extend(glove.read(0.1))
                events.extend(glove.events())
                return [e for e in events if e[0] == "error"]

            (error,) = wait_for(reported, 30, message="no clock error event")
            readings += collect(glove, 1.0)  # and it goes on streaming
            assert glove._thread.is_alive()
        finally:
            glove.close()
    # The rate is measured against host receive times, which a busy machine delays unevenly:
    # 0.3x on a quiet machine, 0.24x seen under the full suite.
    match = re.match(r"glove clock runs at ([\d.]+)x real time", error[1]["message"])
    assert match and 0.2 <= float(match.group(1)) <= 0.4, error[1]["message"]
    seqs = np.array([r.seq for r in readings])
    assert np.all(np.diff(seqs) == 1), "samples lost around the clock fault"
    assert readings[-1].seq - readings[0].seq > 1500  # > 3 s at 500 Hz without a break
    last = readings[-1]
    assert int(last.fields["clock_drift_ppb"]) == 0  # host-time fallback, not a wrapped int32
    assert last.t_host_ns <= int(last.fields["t_rx_ns"])


def test_any_failure_in_the_reader_thread_is_an_error_event_and_a_reconnect(tmp_path, monkeypatch):
    with FirmwareProcess(tmp_path / "glove0", rate_hz=500) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        assert wait_for(lambda: glove.read(0.1))

        def broken(*args):
            raise ZeroDivisionError("a bug in the clock")

        monkeypatch.setattr(glove.clock, "map", broken)
        with pytest.raises(DeviceDisconnected, match="reader failed .ZeroDivisionError: a bug"):
            wait_for(lambda: glove.read(0.1), 10)
        (kind, detail), = glove.events()
        assert kind == "error" and "reconnecting" in detail["message"]
        monkeypatch.undo()
        glove.close()
        glove.connect()
        assert wait_for(lambda: glove.read(0.1), 10)
        glove.close()


def test_the_node_process_publishes_the_clock_error_and_keeps_publishing():
    runtime = tempfile.mkdtemp(prefix="glove-clock-")
    base = f"ipc://{runtime}/glove"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices", "glove_sim_tty", "--name", "glove", "--endpoint", base,
         "--options", '{"rate_hz": 250, "clock_drift_ppm": -700000}', "--log-level", "WARNING"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sub = Subscriber([node_endpoints(base).data])
    samples, events = [], []

    def receive_until(condition):
        def step():
            message = sub.receive(50)
            while message is not None:  # everything queued, then look
                if isinstance(message, Sample):
                    samples.append(message)
                elif isinstance(message, Event):
                    events.append(message)
                message = sub.receive(0)
            assert proc.poll() is None, "node exited"
            return condition()
        return step

    try:
        wait_for(receive_until(lambda: any(e.kind == "error" for e in events)), 40,
                 message="no error event from the node")
        error = next(e for e in events if e.kind == "error")
        assert error.detail["message"].startswith("glove clock runs at 0.3")
        assert error.stream == "glove/hand"
        n = len(samples)
        wait_for(receive_until(lambda: len(samples) >= n + 250), 20,
                 message="the node stopped publishing after the clock error")
        assert not [e for e in events if e.kind in ("stalled", "disconnected")]
        seqs = np.array([s.seq for s in samples])
        assert np.all(np.diff(seqs) == 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        shutil.rmtree(runtime, ignore_errors=True)
