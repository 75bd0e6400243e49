"""The example rigs in configs/ load, their driver options are valid, and each one records an
episode when its hardware is stood in for: the UVC camera by a video file the test writes (the
same VideoCapture path), the glove by its firmware simulator on a pseudo-terminal (the same
serial driver), the RealSense camera by a recording played through pyrealsense2."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from collector.config import load_config
from collector.recording.session import Session
from collector.storage.reader import open_episode, validate_episode
from devices.check import check
from devices.uvc.node import UvcCamera
from tests.waiting import wait_for

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RIGS = ["head_glove", "wrist_glove", "realsense_head_glove"]


@pytest.mark.parametrize("rig", RIGS)
def test_the_rig_loads_and_its_options_are_valid(rig):
    config = load_config(CONFIGS / f"{rig}.toml")
    nodes = [{"name": n.name, "driver": n.driver, "options": n.options} for n in config.nodes]
    assert check(nodes) == []
    assert config.recording.pre_roll_s == 3.0 and config.session.glove_record_button
    assert config.recording.master_stream.split("/")[0] in {n.name for n in config.nodes}
    assert {"uvc", "glove"} <= {n.driver for n in config.nodes}


def test_the_wrist_rig_declares_its_fisheye_calibration():
    config = load_config(CONFIGS / "wrist_glove.toml")
    wrist = next(n for n in config.nodes if n.driver == "uvc")
    (spec,) = UvcCamera(wrist.name, wrist.options).streams()  # declared before any camera opens
    intrinsics = spec.meta["intrinsics"]
    assert intrinsics["model"] == "fisheye" and len(intrinsics["coeffs"]) == 4
    assert (intrinsics["width"], intrinsics["height"]) == (1280, 720)


def stand_in(config, tmp_path: Path, rs_recording=None):
    """The rig's devices replaced by sources this machine has (everything else as configured)."""
    video = tmp_path / "head.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(90):
        writer.write(np.full((48, 64, 3), i % 200, np.uint8))
    writer.release()
    for node in config.nodes:
        if node.driver == "uvc":
            keep = {k: node.options[k] for k in ("calibration_file",) if k in node.options}
            # 64x48 frames from the file at the rig's declared rate; 1280x720 would only be slower.
            node.options = {"source": str(video), "loop": True, "fps": 30.0, **keep}
            if keep:
                node.options.update(width=1280, height=720)
        elif node.driver == "glove":
            node.driver, node.options = "glove_sim_tty", {"rate_hz": 200.0, "hand": node.options["hand"]}
        elif node.driver == "realsense":
            node.options = {"from_file": str(rs_recording.path), "loop": True}
    config.recording.output = tmp_path / "rec"
    config.recording.min_free_gb = 0.0
    config.session.glove_record_button = False  # the simulated glove does not press it here
    return config


# The RealSense rig (a RealSense, a UVC head camera and the glove) covers every driver of the
# other two, which record only with -m slow: the default suite stays under its 10 minutes.
@pytest.mark.parametrize("rig", [pytest.param(r, marks=pytest.mark.slow) if r != "realsense_head_glove"
                                 else r for r in RIGS])
def test_the_rig_records_an_episode_on_stand_in_devices(rig, tmp_path, request):
    if rig == "realsense_head_glove":
        pytest.importorskip("pyrealsense2")
        rs_recording = request.getfixturevalue("rs_recording")
    else:
        rs_recording = None
    config = stand_in(load_config(CONFIGS / f"{rig}.toml"), tmp_path, rs_recording)
    with Session(config) as session:
        streams = {s for n in config.nodes for s in [f"{n.name}/color"] if n.driver == "uvc"}
        # Running long enough to hold a whole pre-roll (3 s) before the press.
        wait_for(lambda: all(session.status()["streams"].get(s, {}).get("received", 0) > 4 * 30
                             for s in streams) and session.status()["pre_roll"]["held_s"] > 3.2,
                 timeout_s=60)
        started = session.start_episode()
        wait_for(lambda: session.status()["streams"]["glove/hand"]["last_t_host_ns"]
                 > started["start_ns"] + 3.5e9, timeout_s=60)
        stopped = session.stop_episode()
        stopped.update(session.wait_closed(stopped["uuid"]))
    path = stopped["path"]
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert {f"{n.name}/color" for n in config.nodes if n.driver != "glove_sim_tty"} <= set(ep.streams)
        for stream in streams:
            t = ep.timestamps(stream)["t_host_ns"].astype(np.int64)
            # The pre-roll holds the seconds before the press: the episode begins 3 s early.
            assert started["trigger_ns"] - started["start_ns"] == 3_000_000_000
            assert t[0] - started["start_ns"] < 1e8 and np.sum(t < started["trigger_ns"]) >= 0.9 * 3 * 30
