"""The collect window with hands-free episodes (recording.hands_free), on real simulated device
processes: the glove's activity starts an episode (a banner says so), its end stops it, and the
operator tags it with a key as any other (``-m slow``: processes and a scripted operator)."""

import time

import pytest
from PySide6 import QtCore

from collector.storage.reader import open_episode


@pytest.mark.slow
def test_an_episode_the_glove_cuts_is_shown_and_tagged_by_key(window_factory, small_sim_config,
                                                               wait_state, qtbot, tmp_path):
    config = small_sim_config(tmp_path, epoch_ns=time.time_ns())
    config.session.glove_record_button = False
    config.recording.hands_free.mode = "always_on"
    config.recording.hands_free.activity.idle_s = 1.0
    glove = next(node for node in config.nodes if node.driver == "sim_glove")
    # In a loop: a stretch of work every ~10 s, whenever the processes are up.
    glove.options["script"] = [{"do": "idle", "s": 8.0}, {"do": "work", "s": 1.0}]
    window, model = window_factory(config)
    assert "always on" in window.statusBar().currentMessage()
    wait_state(model, "recording", timeout=40_000)
    qtbot.waitUntil(lambda: "started by your activity" in window.banner.text(), timeout=5_000)
    qtbot.waitUntil(lambda: model.last_episode is not None and model.last_episode["closed"],
                    timeout=30_000)
    assert model.state == "idle" and model.episodes_recorded == 1
    qtbot.keyClick(window, QtCore.Qt.Key_S)
    qtbot.waitUntil(lambda: model.last_episode["outcome"] == "success", timeout=10_000)
    with open_episode(model.last_episode["path"]) as episode:
        attrs = dict(episode.attrs)
    assert (attrs["trigger"], attrs["end_trigger"], attrs["outcome"]) == ("activity", "activity", "success")
