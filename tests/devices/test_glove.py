"""The serial glove driver reading the firmware simulator through a real pty and real pyserial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collector.wire.options import ConfigError
from collector.wire.device import DeviceDisconnected, DeviceError
from devices.glove.calibration import calibrate
from devices.glove.discover import find_gloves
from devices.glove.firmware import FirmwareProcess
from devices.glove.node import Glove
from devices.sim_world import World

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def link(tmp_path):
    return str(tmp_path / "glove0")


def collect(glove: Glove, seconds: float) -> list:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += glove.read(0.1)
    return out


def missing(readings) -> int:
    seqs = np.array([r.seq for r in readings])
    assert np.all(np.diff(seqs) >= 1)
    return int(seqs[-1] - seqs[0] + 1 - len(seqs))


def test_1khz_for_4s_loses_nothing(link):
    with FirmwareProcess(link, rate_hz=1000, seed=4) as fw:
        glove = Glove("glove", {"port": fw.link})
        (spec,) = glove.streams()
        glove.connect()
        try:
            readings = collect(glove, 4.0)
        finally:
            glove.close()
    assert spec.rate_hz == 1000.0 and spec.meta["glove"]["model"] == "SimGlove-FW"
    assert 3950 <= len(readings) <= 4050
    assert missing(readings) == 0 and glove._parser.stats.bad_frames == 0
    for r in readings[:3]:
        assert set(r.fields) == {f.name for f in spec.fields}
        for f in spec.fields:
            assert r.fields[f.name].dtype.str == f.dtype and r.fields[f.name].shape == f.shape
    host = np.array([r.t_host_ns for r in readings])
    rx = np.array([int(r.fields["t_rx_ns"]) for r in readings])
    assert np.all(np.diff(host) >= 0) and np.all(host <= rx)
    assert (np.diff(host[1000:]) > 0).mean() > 0.99  # once fitted: the glove's even ticks
    # Mapped host time is the capture time: the world at that instant is what the glove sent.
    world = World(seed=4)
    for r in readings[2000::1500]:
        s = world.state_at_ns(r.t_host_ns)
        assert np.allclose(r.fields["wrist_pos"], s.wrist_pos, atol=0.004)


def test_garbage_bad_crc_truncation_and_bursts_lose_only_the_damaged_frames(link):
    with FirmwareProcess(link, rate_hz=500) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        try:
            readings = collect(glove, 0.3)
            fw.send("garbage", n=500)
            readings += collect(glove, 0.2)
            fw.send("burst", n=60)
            readings += collect(glove, 0.3)
            assert missing(readings) == 0
            fw.send("bad_crc", n=3)
            readings += collect(glove, 0.2)
            fw.send("truncate", n=2)
            readings += collect(glove, 0.3)
        finally:
            glove.close()
    stats = glove._parser.stats
    assert missing(readings) == 5
    assert stats.bad_frames >= 2 and stats.resynced >= 2


def test_unplug_is_reported_and_the_glove_reconnects(link):
    with FirmwareProcess(link, rate_hz=500) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        before = collect(glove, 0.3)
        fw.send("unplug", s=0.6)
        # pyserial says "device reports readiness to read but returned no data" or EIO, as for
        # a USB unplug, depending on where the read was when the pty closed.
        with pytest.raises(DeviceDisconnected, match="readiness to read|Input/output error"):
            collect(glove, 1.0)
        glove.close()
        with pytest.raises(DeviceError, match="cannot open"):
            glove.connect()
        fw.wait_replugged()
        glove.connect()
        after = collect(glove, 0.3)
        glove.close()
    gap = after[0].seq - before[-1].seq - 1
    assert 200 <= gap <= 450  # 0.6 s at 500 Hz went by unplugged: a gap, not a restart
    assert missing(after) == 0


def test_a_rebooted_glove_restarts_its_sequence(link):
    with FirmwareProcess(link, rate_hz=500) as fw:
        glove = Glove("glove", {"port": fw.link})
        glove.connect()
        before = collect(glove, 1.0)
        fw.send("unplug", s=0.1, reboot=True)
        with pytest.raises(DeviceDisconnected):
            collect(glove, 1.0)
        glove.close()
        fw.wait_replugged()
        glove.connect()
        after = collect(glove, 0.3)
        glove.close()
    assert after[0].seq < before[-1].seq - 100 and missing(after) == 0
    assert after[0].t_device_ns < before[-1].t_device_ns


def test_left_and_right_gloves_at_once(tmp_path):
    with FirmwareProcess(tmp_path / "left", rate_hz=1000, hand="left", seed=1) as left, \
            FirmwareProcess(tmp_path / "right", rate_hz=1000, seed=2) as right:
        gloves = [Glove("glove_l", {"port": left.link, "hand": "left"}),
                  Glove("glove_r", {"port": right.link})]
        for glove in gloves:
            glove.connect()
        got = {g.name: [] for g in gloves}
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for glove in gloves:
                got[glove.name] += glove.read(0.01)
        for glove in gloves:
            glove.close()
    assert gloves[0].info()["serial"] == "SIMFW-1-left"
    for name, readings in got.items():
        assert len(readings) >= 1300 and missing(readings) == 0, name
        assert {r.stream for r in readings} == {f"{name}/hand"}


def test_wrong_baud_rate_is_named(link):
    with FirmwareProcess(link, rate_hz=500, baud=115200) as fw:
        glove = Glove("glove", {"port": fw.link, "describe_timeout_s": 0.5})
        with pytest.raises(DeviceError, match="no valid binary frame at 921600 baud: wrong "
                                              "baudrate or mode"):
            glove.streams()
        glove = Glove("glove", {"port": fw.link, "baudrate": 115200})
        glove.connect()
        assert collect(glove, 0.2)
        fw.send("baud", value=921600)  # the firmware changes speed under a running driver
        with pytest.raises(DeviceDisconnected, match="without a valid frame at 115200 baud"):
            collect(glove, 2.0)
        glove.close()


def test_csv_line_mode(link):
    with FirmwareProcess(link, rate_hz=200, mode="csv", num_joints=5) as fw:
        glove = Glove("glove", {"port": fw.link, "mode": "csv"})
        (spec,) = glove.streams()
        glove.connect()
        readings = collect(glove, 0.5)
        glove.close()
    assert spec.field("finger_joints").shape == (5,) and spec.meta["mode"] == "csv"
    assert len(readings) >= 80 and missing(readings) == 0
    assert readings[0].fields["buttons"].dtype == np.uint8


def test_calibration_adds_closure_and_goes_into_the_metadata(link, tmp_path):
    names = [f"j{i}" for i in range(15)]
    cal = calibrate(np.zeros((3, 15)), np.full((3, 15), 1.5), operator="ana", hand="right",
                    joint_names=names)
    cal.save(tmp_path / "cal" / "ana-right.json")
    with FirmwareProcess(link, rate_hz=200) as fw:
        glove = Glove("glove", {"port": fw.link, "operator": "ana",
                                "calibration_dir": str(tmp_path / "cal")})
        (spec,) = glove.streams()
        glove.connect()
        readings = collect(glove, 0.3)
        glove.close()
    assert spec.meta["calibration"]["operator"] == "ana"
    r = readings[-1]
    assert np.allclose(r.fields["finger_closure"],
                       np.clip(r.fields["finger_joints"] / 1.5, 0, 1), atol=1e-5)
    with pytest.raises(DeviceError, match="no calibration file .*bob-right.json"):
        Glove("glove", {"port": link, "operator": "bob", "calibration_dir": str(tmp_path)})


def test_discovery_probes_listed_ports(link, monkeypatch, tmp_path):
    with FirmwareProcess(link, rate_hz=200, seed=9) as fw:
        monkeypatch.setenv("COLLECTOR_GLOVE_PORTS", os.pathsep.join([fw.link, str(tmp_path / "x")]))
        found = {d["id"]: d for d in find_gloves()}
        assert found[fw.link]["kind"] == "glove" and found[fw.link]["serial"] == "SIMFW-9-right"
        assert found[fw.link]["mode"] == "binary" and found[fw.link]["name"] == "SimGlove-FW SIMFW-9-right"
        assert found[fw.link]["channels"].startswith("wrist_pos:3,wrist_quat:4,finger_joints:15")
        assert found[str(tmp_path / "x")]["kind"] == "serial-port"
        proc = subprocess.run([sys.executable, "-m", "devices.discover", "serial"], cwd=REPO,
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert json.loads(proc.stdout)["serial"]["devices"][0]["rate_hz"] == 200.0


def test_config_errors_are_exact():
    with pytest.raises(ConfigError, match="glove.options: set port .* or vid/pid/serial_number"):
        Glove("glove", {})
    with pytest.raises(ConfigError, match="vid must be 4 hex digits, e.g. '2341', got 'xyz'"):
        Glove("glove", {"vid": "xyz"})
    with pytest.raises(ConfigError, match="glove.options.mode: 'ascii' is not one of 'binary', 'csv'"):
        Glove("glove", {"port": "/dev/null", "mode": "ascii"})


def test_missing_port_and_silent_port_are_named(tmp_path):
    with pytest.raises(DeviceError, match="cannot open .*nope"):
        Glove("glove", {"port": str(tmp_path / "nope")}).streams()
    master, slave = os.openpty()
    try:
        glove = Glove("glove", {"port": os.ttyname(slave), "describe_timeout_s": 0.3})
        with pytest.raises(DeviceError, match="no data from .* is the glove powered"):
            glove.streams()
    finally:
        os.close(master)
        os.close(slave)


def test_calibration_command_records_open_and_fist(link, tmp_path, monkeypatch):
    from devices.glove import calibration

    monkeypatch.setattr("builtins.input", lambda prompt="": "")
    with FirmwareProcess(link, rate_hz=200) as fw:
        code = calibration.main(["--port", fw.link, "--operator", "ana", "--seconds", "0.3",
                                 "--dir", str(tmp_path / "cal")])
    assert code == 0
    cal = calibration.Calibration.load(tmp_path / "cal" / "ana-right.json")
    assert cal.glove_serial == "SIMFW-0-right" and len(cal.open) == 15
    assert cal.joint_names[0] == "thumb_cmc"
