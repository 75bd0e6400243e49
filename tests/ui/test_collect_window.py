"""The collect window on real simulated device processes, driven as an operator would (keys, clicks)."""

import html
import json
import time
from pathlib import Path

import h5py
import numpy as np
from PySide6 import QtCore

from collector.storage.reader import open_episode
from collector.wam.node import service_config


def episode_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.h5") if ".trash" not in p.parts)


def click_when_enabled(qtbot, button):
    # Buttons follow the model's state through queued events: click as an operator would, once
    # the button is live.
    qtbot.waitUntil(button.isEnabled)
    button.click()


def test_record_tag_discard_with_hotkeys(window_factory, small_sim_config, wait_state, qtbot, tmp_path):
    window, model = window_factory(small_sim_config(tmp_path))
    window.session_panel.notes.setPlainText("cube slipped once")
    window.setFocus()

    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    wait_state(model, "recording")
    qtbot.waitUntil(lambda: window.state_pill.text() == "● REC")
    assert not window.session_panel.task.isEnabled()  # who/what/where fixed while recording
    qtbot.wait(1200)
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    wait_state(model, "idle")
    qtbot.waitUntil(lambda: window.controls.success.isEnabled())
    assert "UNKNOWN" in window.session_panel.last.text()

    qtbot.keyClick(window, QtCore.Qt.Key_S)
    qtbot.waitUntil(lambda: model.last_episode and model.last_episode["outcome"] == "success")
    qtbot.waitUntil(lambda: "SUCCESS" in window.session_panel.last.text())
    # Stop returns at once; the episode drains and closes, then the panel says it is whole.
    qtbot.waitUntil(lambda: "nothing missing" in window.session_panel.last.text(), timeout=20_000)
    assert model.last_episode["closed"] and model.last_episode["problems"] == []
    (first,) = episode_files(tmp_path)
    with open_episode(first) as episode:
        assert episode.attrs["outcome"] == "success"
        assert episode.attrs["task"] == "pick-cube"
        assert episode.attrs["operator"] == "ana" and episode.attrs["station"] == "bench-1"
        assert episode.attrs["notes"] == "cube slipped once"
        assert episode.count("cam0/color") >= 20  # ~1.2 s at 30 fps
        assert episode.count("glove/hand") >= 80
    qtbot.waitUntil(lambda: window.session_panel.counter.text() == "1 / 50")

    # Record again and throw it away while recording: Backspace.
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    wait_state(model, "recording")
    qtbot.wait(500)
    qtbot.keyClick(window, QtCore.Qt.Key_Backspace)
    qtbot.waitUntil(lambda: len(list((tmp_path / ".trash").rglob("*.h5"))) == 1, timeout=20_000)
    wait_state(model, "idle")
    assert episode_files(tmp_path) == [first]
    assert model.episodes_recorded == 1

    # Failure with the button, then discard the finished episode: the counter goes back.
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "recording")
    qtbot.wait(500)
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "idle")
    click_when_enabled(qtbot, window.controls.failure)
    qtbot.waitUntil(lambda: model.last_episode and model.last_episode["outcome"] == "failure")
    qtbot.waitUntil(lambda: model.last_episode["closed"], timeout=20_000)
    second = [p for p in episode_files(tmp_path) if p != first][0]
    with h5py.File(second) as f:
        assert f.attrs["outcome"] == "failure"
        assert json.loads(f.attrs["tags"]) == []
    qtbot.keyClick(window, QtCore.Qt.Key_Backspace)
    qtbot.waitUntil(lambda: episode_files(tmp_path) == [first], timeout=20_000)
    qtbot.waitUntil(lambda: model.episodes_recorded == 1)  # counted down once the reply is in

    # The Review tab lists what was recorded, with its outcome; collect keys rest meanwhile.
    window.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.review is not None and window.review.table.model().rowCount() == 1,
                    timeout=20_000)
    assert not any(s.isEnabled() for s in window._shortcut_objects)
    window.tabs.setCurrentIndex(0)
    assert all(s.isEnabled() for s in window._shortcut_objects)


def test_health_strip_turns_red_on_stalled_camera(window_factory, small_sim_config, wait_state, qtbot, tmp_path):
    config = small_sim_config(tmp_path, stall_at_s=2.0, stall_s=30.0)
    config.nodes[0].liveness_timeout_s = 0  # the watchdog would restart the silent camera
    window, model = window_factory(config)
    qtbot.waitUntil(lambda: "cam0" in window.health_strip.tiles and
                    window.health_strip.level("cam0") == "ok", timeout=15_000)
    tile = window.health_strip.tiles["cam0"]
    qtbot.waitUntil(lambda: "no data for" in tile.toolTip(), timeout=15_000)
    assert tile.level == "bad"
    assert "stalled" in tile.toolTip()
    assert "no data" not in window.health_strip.tiles["glove"].toolTip()
    # Starting with an unhealthy device is allowed, with a warning that names it.
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "recording")
    qtbot.waitUntil(lambda: window.banner.isVisible() and "cam0" in window.banner.text())


def test_an_episode_missing_camera_frames_is_shown_as_incomplete(window_factory, small_sim_config,
                                                                 wait_state, qtbot, tmp_path):
    # The camera stops delivering mid-episode (its node stays alive): once the episode has
    # closed, the operator reads what is missing from it, in words.
    config = small_sim_config(tmp_path, stall_at_s=4.0, stall_s=60.0)
    config.nodes[0].liveness_timeout_s = 0  # the watchdog would restart the silent camera
    window, model = window_factory(config)
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "recording")
    qtbot.waitUntil(lambda: "cam0" in window.health_strip.tiles  # tiles come with the first health poll
                    and window.health_strip.level("cam0") == "bad", timeout=15_000)
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "idle")
    qtbot.waitUntil(lambda: model.last_episode["closed"], timeout=20_000)
    problems = model.last_episode["problems"]
    assert any(p.startswith("cam0/color: ") for p in problems), problems
    assert model.last_episode["status"] == "complete"
    qtbot.waitUntil(lambda: "INCOMPLETE" in window.session_panel.last.text())
    assert html.escape(problems[0]) in window.session_panel.last.text()
    qtbot.waitUntil(lambda: window.banner.isVisible() and "is incomplete: cam0/color: " in window.banner.text())
    (path,) = episode_files(tmp_path)
    with open_episode(path) as episode:  # the file says the same
        assert episode.integrity_problems() == problems


def test_close_while_recording_finishes_the_episode(window_factory, small_sim_config, wait_state, qtbot, tmp_path):
    window, model = window_factory(small_sim_config(tmp_path))
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "recording")
    qtbot.wait(1000)
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 30
    assert not model.session.supervisor.recorder.alive
    (path,) = episode_files(tmp_path)
    with h5py.File(path) as f:  # plain open: the file was closed properly, not recovered
        assert f.attrs["status"] == "complete"
        assert f["streams/cam0/color/t_host_ns"].shape[0] >= 15


def test_glove_record_button_starts_and_stops(window_factory, small_sim_config, wait_state, qtbot, tmp_path):
    # The scripted operator presses record at world times 7.53 s (start) and 8.93 s (stop).
    config = small_sim_config(tmp_path, epoch_ns=time.time_ns() - int(4.0e9))
    config.session.glove_record_button = True
    window, model = window_factory(config)
    wait_state(model, "recording", timeout=15_000)
    qtbot.waitUntil(lambda: model.episodes_recorded == 1, timeout=15_000)
    qtbot.waitUntil(lambda: model.last_episode["closed"], timeout=20_000)  # drained and closed
    (path,) = episode_files(tmp_path)
    with open_episode(path) as episode:
        duration = episode.summary()["duration_s"]
        pre_roll_s = episode.attrs["pre_roll_s"]  # the episode begins this long before the press
    assert 0.8 < duration - pre_roll_s < 2.5  # the presses are 1.4 s apart
    assert 0 < pre_roll_s <= config.recording.pre_roll_s


def test_device_lost_mid_episode_is_shown_and_recording_continues(window_factory, small_sim_config,
                                                                   wait_state, qtbot, tmp_path):
    window, model = window_factory(small_sim_config(tmp_path, disconnect_at_s=3.0, disconnect_s=1.5))
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "recording")
    qtbot.waitUntil(lambda: window.banner.isVisible() and "cam0" in window.banner.text()
                    and "recording continues" in window.banner.text(), timeout=15_000)
    qtbot.waitUntil(lambda: window.health_strip.level("cam0") == "bad", timeout=5_000)
    assert model.state == "recording"
    qtbot.waitUntil(lambda: window.health_strip.tiles["cam0"].level != "bad", timeout=20_000)  # back
    click_when_enabled(qtbot, window.controls.record)
    wait_state(model, "idle")
    # Stop returns at once; the episode drains and closes in the background (a busy machine
    # had it still open, and locked, when read).
    qtbot.waitUntil(lambda: model.last_episode["closed"], timeout=30_000)
    (path,) = episode_files(tmp_path)
    with open_episode(path) as episode:
        kinds = [(e["kind"], e.get("stream") or e.get("node")) for e in episode.events()]
        glove_seq = episode.timestamps("glove/hand")["seq"]
    assert any(kind == "disconnected" for kind, _ in kinds)
    assert np.all(np.diff(glove_seq) == 1)  # the glove never stopped recording


def test_wam_preview_beside_the_live_view(window_factory, small_sim_config, qtbot, tmp_path):
    config = small_sim_config(tmp_path)
    config.services.append(service_config())  # the shipped checkpoint, trained on the simulator
    window, model = window_factory(config)
    qtbot.waitUntil(lambda: len(window.previews) == 1, timeout=30_000)
    (preview,) = window.previews  # loaded by name from the service entry
    qtbot.waitUntil(lambda: preview.provider.state().available, timeout=60_000)
    qtbot.waitUntil(lambda: preview.view.strip.isVisible(), timeout=5_000)
    assert "wam" not in window.health_strip.tiles  # a preview, not a device
    pane = window.cameras.panes["cam0"]
    qtbot.waitUntil(lambda: pane.trajectory.getData()[0] is not None
                    and len(pane.trajectory.getData()[0]) > 0, timeout=10_000)
