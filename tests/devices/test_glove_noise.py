"""Long runs of line noise on the glove's serial link are counted noise, not an unplug: the frame
after any run is kept, nothing reconnects, seq stays continuous (issue 13, item 12)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from collector.wire.bus import Subscriber, node_endpoints
from collector.wire.protocol import Event, Sample
from devices.glove.firmware import FirmwareProcess
from devices.glove.node import Glove
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_long_garbage_runs_lose_no_sample_and_are_reported_as_noise(tmp_path):
    with FirmwareProcess(tmp_path / "glove0", rate_hz=500) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        readings, events = [], []

        def read_until(condition):
            def step():
                readings.extend(glove.read(0.05))  # a lost link would raise here
                events.extend(glove.events())
                return condition()
            return step

        try:
            wait_for(read_until(lambda: len(readings) >= 100))
            sizes = [5000, 4097, 12_000, 300, 9000]
            for n in sizes:
                fw.send("garbage", n=n)
                target = readings[-1].seq + 100
                wait_for(read_until(lambda: readings[-1].seq >= target), 10)
            wait_for(read_until(lambda: sum(e[1]["bytes"] for e in events
                                            if e[0] == "noise") >= sum(sizes)), 10,
                     message=f"noise events: {events}")
        finally:
            glove.close()
    seqs = np.array([r.seq for r in readings])
    assert np.all(np.diff(seqs) == 1), "samples lost to garbage"
    noise = [d for kind, d in events if kind == "noise"]
    assert sum(d["bytes"] for d in noise) == sum(sizes)
    assert "bytes of line noise" in noise[0]["message"]
    assert not [e for e in events if e[0] == "error"]
    assert glove._parser.stats.resynced >= len(sizes)


def test_a_node_with_injected_garbage_keeps_its_samples_without_reconnecting():
    runtime = tempfile.mkdtemp(prefix="glove-noise-")
    base = f"ipc://{runtime}/glove"
    faults = [{"at_s": 1.5 + 0.4 * i, "cmd": "garbage", "n": n}
              for i, n in enumerate([6000, 4500, 20_000, 8000])]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices", "glove_sim_tty", "--name", "glove", "--endpoint", base,
         "--options", json.dumps({"rate_hz": 500, "faults": faults}), "--log-level", "WARNING"],
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

    def noise_bytes():
        return sum(e.detail.get("bytes", 0) for e in events if e.kind == "noise")

    try:
        wait_for(receive_until(lambda: noise_bytes() >= 38_500), 40,
                 message=f"noise reported: {noise_bytes()} bytes; events {events}")
        n = len(samples)
        wait_for(receive_until(lambda: len(samples) >= n + 250), 20)
        assert not [e for e in events if e.kind in ("disconnected", "stalled", "error")], events
        seqs = np.array([s.seq for s in samples])
        assert np.all(np.diff(seqs) == 1), "samples lost around the garbage"
        assert {e.stream for e in events if e.kind == "noise"} == {"glove/hand"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        shutil.rmtree(runtime, ignore_errors=True)
