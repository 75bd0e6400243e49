"""A station's calibration: stored, checked against the devices, applied to episodes, reported."""

import json

import numpy as np
import pytest

from collector.calibration.station import (calibration_lines, episode_attr, episode_calibration,
                                           load_calibration, save_calibration, station_calibration_path)
from collector.cli import main
from collector.config import AppConfig, NodeConfig, save_config
from collector.review.summary import summarize_episode
from collector.storage.reader import open_episode
from collector.storage.sync import calibrated_latencies_ms, fit_device_clock, sync_time_ns
from tests.collector.sim_episodes import write_sim_episode

SERIALS = {"cam0/color": "SIMCAM-1-0", "cam0/depth": "SIMCAM-1-0", "glove/hand": "SIMGLOVE-1-right"}


def calibration(cam_ms=1.0, glove_ms=3.0, **overrides):
    streams = {name: {"latency_ms": glove_ms if name.startswith("glove") else cam_ms,
                      "uncertainty_ms": 0.2, "method": "taps" if name.startswith("glove") else "timecode",
                      "node": name.split("/")[0], "serial": serial,
                      "driver": "sim_glove" if name.startswith("glove") else "sim_camera"}
               for name, serial in SERIALS.items()}
    return {"schema": 1, "station": "bench", "calibrated_ns": 1_700_000_000_000_000_000,
            "calibrated_at": "2023-11-14T22:13:20+00:00", "reference": "cam0/color",
            "streams": streams, **overrides}


def test_the_station_file_round_trips_and_a_foreign_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = station_calibration_path("bench 1")
    assert path == tmp_path / "collector" / "calibration" / "bench_1.json"
    assert load_calibration(path) is None
    save_calibration(calibration(), path)
    assert load_calibration(path) == calibration()
    path.write_text('{"cameras": []}')
    with pytest.raises(ValueError, match="bench_1.json: not a latency calibration"):
        load_calibration(path)
    # The recorder does not refuse to record over a broken file: the episode is uncalibrated.
    assert episode_attr("bench 1", SERIALS) == ""


def test_a_changed_device_or_an_uncalibrated_stream_applies_nothing():
    same = episode_calibration(calibration(), SERIALS)
    assert calibrated_latencies_ms(same) == {"cam0/color": 1.0, "cam0/depth": 1.0, "glove/hand": 3.0}
    swapped = episode_calibration(calibration(), {**SERIALS, "glove/hand": "SIMGLOVE-9-right"})
    assert swapped["changed"] == ["glove/hand"] and calibrated_latencies_ms(swapped) == {}
    extra = episode_calibration(calibration(), {**SERIALS, "cam1/color": "SIMCAM-1-1"})
    assert extra["uncalibrated"] == ["cam1/color"] and calibrated_latencies_ms(extra) == {}
    lines = "\n".join(calibration_lines(swapped, now_ns=1_700_000_000_000_000_000 + 3600 * 10**9))
    assert "device changed since calibration: glove/hand" in lines and "(not applied)" in lines
    assert "1 h old" in lines


def test_closing_an_episode_applies_its_calibration_to_the_index(tmp_path):
    """A glove calibrated 2 ms later than the camera: for each frame the index picks the glove
    sample fitted 2 ms after the frame (fitted clocks carry each stream's mean latency)."""
    attrs = {"latency_calibration": json.dumps(episode_calibration(calibration(1.0, 3.0), SERIALS))}
    path = write_sim_episode(tmp_path / "calibrated.h5", seed=1, seconds=0.5, glove_rate=1000.0,
                             attrs=attrs)
    with open_episode(path) as ep:
        assert ep.streams["glove/hand"].meta["serial"] == SERIALS["glove/hand"]
        fitted = {}
        for stream in ("cam0/color", "glove/hand"):
            t = ep.timestamps(stream)
            fitted[stream] = sync_time_ns(t["t_device_ns"], t["t_host_ns"],
                                          fit_device_clock(t["t_device_ns"], t["t_host_ns"]))
        index = ep.sync["streams"]["glove/hand"]["index"]
    ok = index >= 0
    later = fitted["glove/hand"][index[ok]] - fitted["cam0/color"][ok]
    assert abs(np.median(later) - 2_000_000) <= 500_000  # within half a glove period


def test_info_says_an_episode_was_recorded_uncalibrated(tmp_path, capsys):
    path = write_sim_episode(tmp_path / "ep.h5", seed=1, seconds=0.3)
    assert main(["info", str(path)]) == 0
    assert "latency calibration: none" in capsys.readouterr().out
    # The review window's quality report says the same.
    assert summarize_episode(path).calibration[0].startswith("latency calibration: none")


def test_the_review_summary_shows_calibrated_skew_uncertainty_and_age(tmp_path):
    recorded = calibration()["calibrated_ns"] + 2 * 86400 * 10**9
    attrs = {"latency_calibration": json.dumps(episode_calibration(calibration(), SERIALS)),
             "start_time_ns": recorded}
    path = write_sim_episode(tmp_path / "ep.h5", seed=1, seconds=0.3, attrs=attrs)
    lines = summarize_episode(path).calibration
    assert "(2 d before recording)" in lines[0]
    assert any("glove/hand" in line and "skew to cam0/color +2.00 ± 0.28 ms" in line for line in lines)


def test_show_says_when_the_station_devices_changed(tmp_path, capsys):
    config = tmp_path / "station.toml"
    save_config(AppConfig(nodes=[NodeConfig("cam0", "realsense", options={"serial": "123"}),
                                 NodeConfig("glove", "sim_glove")]), config)
    stored = tmp_path / "cal.json"
    save_calibration(calibration(), stored)
    assert main(["calibrate", "show", "--config", str(config), "--output", str(stored)]) == 3
    out = capsys.readouterr().out
    assert "latency   1.00 ± 0.20 ms" in out
    assert "device changed since calibration: cam0/color: sim_camera SIMCAM-1-0 -> realsense 123" in out
    assert main(["calibrate", "show", "--output", str(tmp_path / "none.json")]) == 1
    assert "run 'collector calibrate latency'" in capsys.readouterr().out
