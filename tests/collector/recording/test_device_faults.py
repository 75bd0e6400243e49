"""Device faults mid-episode, seen through the operator's model (CollectModel): a camera stall
and a node crash are shown while they last, the episode marks them, and the other streams never
stop recording. (A camera unplug: tests/ui/test_collect_window.py; the restart itself:
tests/collector/test_supervisor.py.)"""

import os
import signal
import time

import numpy as np

from collector.recording.collect import CollectModel
from collector.config import sim_config
from collector.storage.reader import open_episode, validate_episode
from tests.waiting import wait_for


def _model(tmp_path, **camera_options):
    config = sim_config(seed=3, glove_rate_hz=100.0)
    config.nodes[0].options.update(width=160, height=120, **camera_options)
    config.recording.output = tmp_path
    config.recording.min_free_gb = 0.0
    config.session.sounds = False
    config.session.reset_countdown_s = 0.0
    model = CollectModel(config)
    seen: list[tuple[str, str]] = []  # (node, state) as the operator's health strip gets them

    def on_event(event, data):
        if event == "health":
            seen.extend((d.node, d.state) for d in data.get("devices", []))
    model.subscribe(on_event)
    return model, seen


def _max_gap_s(ep, stream: str) -> float:
    t = ep.timestamps(stream)["t_host_ns"]
    return float(np.diff(t).max()) / 1e9


def test_camera_stall_is_shown_marked_and_the_glove_keeps_recording(tmp_path):
    model, seen = _model(tmp_path, stall_at_s=5.0, stall_s=2.0)  # mid-episode, and seen for ~1.5 s, on a busy machine too
    model.open()
    try:
        model.start_episode().result(30)
        wait_for(lambda: ("cam0", "stalled") in seen, timeout_s=15, message="the operator never saw the stall")
        stalled_at = seen.index(("cam0", "stalled"))
        wait_for(lambda: ("cam0", "connected") in seen[stalled_at:], timeout_s=15, message="the stall never ended")
        time.sleep(0.5)
        path = model.stop_episode().result(60)["path"]
    finally:
        model.close()
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        kinds = [(e["kind"], e["detail"].get("node")) for e in ep.events()]
        assert ("stalled", "cam0") in kinds and ("resumed", "cam0") in kinds, kinds
        summary = ep.summary()["streams"]
        assert summary["cam0/color"]["gaps"] >= 1 and summary["cam0/color"]["missing"] >= 30
        assert summary["glove/hand"]["gaps"] == 0 and _max_gap_s(ep, "glove/hand") < 0.1


def test_node_crash_is_shown_restarted_and_marked(tmp_path):
    model, seen = _model(tmp_path)
    model.open()
    try:
        model.start_episode().result(30)
        time.sleep(1.0)
        glove = model.session.supervisor.nodes["glove"]
        os.kill(glove.process.pid, signal.SIGKILL)
        wait_for(lambda: ("glove", "restarted") in seen, timeout_s=10, message="the operator never saw the restart")
        wait_for(lambda: model.status.get("streams", {}).get("glove/hand", {}).get("restarts"), timeout_s=20,
              message="the restarted glove never published again")
        time.sleep(0.5)
        path = model.stop_episode().result(60)["path"]
    finally:
        model.close()
    with open_episode(path) as ep:
        assert ("restart", "glove/hand") in [(e["kind"], e["stream"]) for e in ep.events()]
        assert ep.summary()["streams"]["glove/hand"]["restarts"] >= 1
        assert _max_gap_s(ep, "cam0/color") < 0.2  # the camera never stopped
