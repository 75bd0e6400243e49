"""`collector calibrate latency` end to end on the simulated station (real nodes, recorder and
session: slow), then an episode recorded afterwards carries and applies the calibration."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def run(*args, env):
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


def test_calibrate_then_record_applies_the_station_calibration(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    calibrated = run("calibrate", "latency", env=env)
    assert calibrated.returncode == 0, calibrated.stderr
    assert "cam0/color: capture latency" in calibrated.stdout
    assert "glove/hand: latency" in calibrated.stdout and "from the hand's motion" in calibrated.stdout
    assert (tmp_path / "data" / "collector" / "calibration" / "default.json").is_file()
    shown = run("calibrate", "show", env=env)
    assert shown.returncode == 0 and "skew to cam0/color" in shown.stdout, shown.stdout
    recorded = run("record", "--sim", "--duration", "2", "--output", str(tmp_path / "rec"), "-q", env=env)
    assert recorded.returncode == 0, recorded.stderr
    info = run("info", recorded.stdout.split()[-1], env=env)
    assert "latency calibration: " in info.stdout and "latency calibration: none" not in info.stdout
    assert "not applied" not in info.stdout, info.stdout

