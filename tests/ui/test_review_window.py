"""The review window on real episode files, driven as a lab manager would (clicks, keys)."""

import json

import h5py
import pytest
from PySide6 import QtCore

from collector.storage.library import sample_checksum
from collector.review.synthetic import T0_NS, write_synthetic_episode, write_synthetic_ledger
from ui.review.table import COLUMN, SUMMARY_ROLE
from ui.review.window import QtReviewWindow


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "recordings"
    write_synthetic_episode(root / "pick" / "clean.h5", duration_s=3, width=64, height=48,
                            attrs={"task": "pick", "operator": "ana", "outcome": "success"})
    write_synthetic_episode(root / "pick" / "faulty.h5", duration_s=5, width=64, height=48, idle_start_s=1.5,
                            gap=(2.0, 0.3), disconnect_at_s=3.0, surprise_peaks_s=[1.0, 4.0],
                            attrs={"task": "pick", "operator": "bo"}, start_ns=T0_NS + 10**11)
    write_synthetic_episode(root / "wipe" / "wipe.h5", duration_s=2, width=64, height=48,
                            attrs={"task": "wipe", "operator": "cy", "outcome": "failure"}, start_ns=T0_NS + 2 * 10**11)
    clean = root / "pick" / "clean.h5"
    (root / "pick" / "half.h5").write_bytes(clean.read_bytes()[:clean.stat().st_size // 2])
    return root


@pytest.fixture
def window(qtbot, folder):
    from ui import theme

    theme.configure_pyqtgraph()
    window = QtReviewWindow(folder)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitUntil(lambda: window.review.model.rowCount() == 4, timeout=20_000)
    yield window
    window.close()


def shown_names(review):
    return [review.proxy.index(r, 0).data(SUMMARY_ROLE).name for r in range(review.proxy.rowCount())]


def select(qtbot, review, name):
    path = next(s.path for s in review.model.summaries if s.name == name)
    assert review.select_path(path)
    qtbot.waitUntil(lambda: review.current is not None and review.current.name == name)
    return path


def test_table_lists_sorts_filters_and_shows_damaged_files(window, qtbot):
    review = window.review
    assert sorted(shown_names(review)) == ["clean.h5", "faulty.h5", "half.h5", "wipe.h5"]
    half_row = shown_names(review).index("half.h5")
    assert review.proxy.index(half_row, COLUMN["Outcome"]).data() == "damaged"
    assert "truncated" in review.proxy.index(half_row, COLUMN["Quality"]).data(QtCore.Qt.ToolTipRole)
    clean_row = shown_names(review).index("clean.h5")
    assert "<img src=" in review.proxy.index(clean_row, COLUMN["File"]).data(QtCore.Qt.ToolTipRole)
    review.table.sortByColumn(COLUMN["Duration"], QtCore.Qt.AscendingOrder)
    assert shown_names(review) == ["half.h5", "wipe.h5", "clean.h5", "faulty.h5"]
    qtbot.keyClicks(review.search, "bo pick")
    assert shown_names(review) == ["faulty.h5"]
    review.search.clear()
    review.flagged_only.setChecked(True)
    assert sorted(shown_names(review)) == ["faulty.h5", "half.h5"]
    review.flagged_only.setChecked(False)
    review.outcome_filter.setCurrentText("failure")
    assert shown_names(review) == ["wipe.h5"]
    review.outcome_filter.setCurrentText("any outcome")
    review.task_filter.setCurrentText("wipe")
    assert shown_names(review) == ["wipe.h5"]
    assert review.dashboard.cards["episodes"].text() == "4"
    assert review.dashboard.cards["success"].text() == "50%"


def test_player_shows_frames_follows_with_the_cursor_and_jumps(window, qtbot):
    review = window.review
    select(qtbot, review, "faulty.h5")
    player = review.player
    assert player.playback is not None and player.cameras.items["cam0/color"].image is not None
    assert player.cameras.items["cam0/color"].image.shape == (48, 64, 3)
    assert len(player.cursors) == 4  # wrist, fingers, grip, surprise
    player.seek_time(2.5)
    assert abs(player.time_s - 2.5) < 0.02 and all(abs(c.value() - player.time_s) < 1e-9 for c in player.cursors)
    view = player.rows[0]["plot"].vb
    target = view.mapViewToScene(QtCore.QPointF(1.0, view.viewRange()[1][0] + 0.01))
    click = player.plots.mapFromScene(target)
    qtbot.mouseClick(player.plots.viewport(), QtCore.Qt.LeftButton, pos=click)
    assert abs(player.time_s - 1.0) < 0.05  # a click in a plot moves the video there
    player.seek_step(0)
    player.jump_kind.setCurrentText("Gaps")
    mark = player.jump(1)
    assert mark.kind == "gap" and abs(player.time_s - 2.3) < 0.03
    player.jump_kind.setCurrentText("Surprise peaks")
    assert player.jump(1).kind == "surprise" and abs(player.time_s - 4.05) < 0.11
    assert player.jump(-1).kind == "surprise" and abs(player.time_s - 1.05) < 0.11
    player.jump_kind.setCurrentText("Events")
    assert player.jump(1).kind == "disconnected"
    step = player.step
    review.table.setFocus()  # where the focus is after listing: the keys drive the player
    qtbot.keyClick(review.table, QtCore.Qt.Key_Right)
    assert player.step == step + 1 and review.current.name == "faulty.h5"
    player.seek_step(0)  # from the start: a busy machine must not see it play to the end first
    step = player.step
    player.speed_box.setCurrentText("4×")
    qtbot.keyClick(review.table, QtCore.Qt.Key_Space)
    assert player.playing
    qtbot.waitUntil(lambda: player.step > step + 10, timeout=5000)
    qtbot.keyClick(review.table, QtCore.Qt.Key_Space)
    assert not player.playing


def test_curation_is_written_to_the_file_and_leaves_samples_alone(window, qtbot, folder):
    review = window.review
    path = select(qtbot, review, "faulty.h5")
    before = sample_checksum(path)
    panel = review.curation
    qtbot.mouseClick(panel.outcome_buttons["success"], QtCore.Qt.LeftButton)
    qtbot.keyClicks(panel.tags, "retry, occluded")
    panel.notes.setPlainText("slow start")
    qtbot.mouseClick(panel.suggest, QtCore.Qt.LeftButton)  # trim the idle start found by quality
    assert panel.trim_enabled.isChecked() and 1.0 < panel.trim_start.value() < 1.6
    assert panel.dirty
    qtbot.mouseClick(panel.save, QtCore.Qt.LeftButton)
    assert not panel.dirty
    with h5py.File(path) as f:
        assert f.attrs["outcome"] == "success" and json.loads(f.attrs["tags"]) == ["retry", "occluded"]
        assert f.attrs["notes"] == "slow start"
        trim = json.loads(f.attrs["trim"])
    assert trim[0] == pytest.approx(panel.trim_start.value()) and all(r.isVisible() for r in review.player.trim_regions)
    assert sample_checksum(path) == before
    row = shown_names(review).index("faulty.h5")
    assert review.proxy.index(row, COLUMN["Outcome"]).data() == "success"
    assert "✂" in review.proxy.index(row, COLUMN["Duration"]).data()

    reopened = QtReviewWindow(folder)  # a fresh window reads the edits back (from the cache)
    qtbot.addWidget(reopened)
    qtbot.waitUntil(lambda: reopened.review.model.rowCount() == 4, timeout=20_000)
    select(qtbot, reopened.review, "faulty.h5")
    assert reopened.review.curation.tags.text() == "retry, occluded"
    assert reopened.review.curation.trim_start.value() == pytest.approx(trim[0], abs=0.01)
    reopened.close()


def test_trash_then_undo_and_a_damaged_file_is_explained(window, qtbot, folder):
    review = window.review
    path = select(qtbot, review, "wipe.h5")
    review.table.setFocus()
    qtbot.keyClick(review.table, QtCore.Qt.Key_S)  # outcome hotkey, written at once
    with h5py.File(path) as f:
        assert f.attrs["outcome"] == "success"
    qtbot.keyClick(review.table, QtCore.Qt.Key_Delete)
    assert "wipe.h5" not in shown_names(review)
    assert (folder / ".trash" / "wipe.h5").exists() and not (folder / "wipe" / "wipe.h5").exists()
    qtbot.keyClick(review.table, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    qtbot.waitUntil(lambda: "wipe.h5" in shown_names(review), timeout=10_000)
    assert (folder / "wipe" / "wipe.h5").exists() and str(path).endswith("wipe.h5")
    qtbot.waitUntil(lambda: review.current is not None and review.current.name == "wipe.h5"
                    and review.player.playback is not None and review.player.playback.path.name == "wipe.h5")
    assert review.curation.outcome_buttons["success"].isChecked()
    qtbot.keyClick(review.table, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)  # then the outcome key
    with h5py.File(path) as f:
        assert f.attrs["outcome"] == "failure"
    assert review.curation.outcome_buttons["failure"].isChecked()

    select(qtbot, review, "half.h5")
    assert review.player.playback is None and not review.player.play_button.isEnabled()
    assert "Damaged file" in review.quality.text.toPlainText()
    assert not review.curation.outcome_buttons["success"].isEnabled()


def test_quality_tab_says_what_is_missing_and_that_a_recording_failed(qtbot, tmp_path):
    short = write_synthetic_episode(tmp_path / "short.h5", duration_s=4, stall=(2.5, 2.0), width=64,
                                    height=48, attrs={"task": "pick"})
    write_synthetic_ledger(short, undrained={"cam0/color": 45})
    failed = write_synthetic_episode(tmp_path / "failed.h5", duration_s=3, width=64, height=48,
                                     attrs={"task": "pick"}, start_ns=T0_NS + 10**11)
    write_synthetic_ledger(failed, failed="the receiver thread died")
    clean = write_synthetic_episode(tmp_path / "clean.h5", duration_s=3, width=64, height=48,
                                    attrs={"task": "pick"}, start_ns=T0_NS + 2 * 10**11)
    write_synthetic_ledger(clean)
    window = QtReviewWindow(tmp_path)
    qtbot.addWidget(window)
    window.show()
    review = window.review
    qtbot.waitUntil(lambda: review.model.rowCount() == 3, timeout=20_000)

    select(qtbot, review, "short.h5")
    text = review.quality.text.toPlainText()
    assert "cam0/color: last 1.6 s missing" in text and "45 samples missing (45 tail not drained)" in text
    row = shown_names(review).index("short.h5")
    assert "cam0/color: last 1.6 s missing" in review.proxy.index(row, COLUMN["Quality"]).data(QtCore.Qt.ToolTipRole)
    select(qtbot, review, "failed.h5")
    assert "the recording failed: the receiver thread died" in review.quality.text.toPlainText()
    select(qtbot, review, "clean.h5")
    text = review.quality.text.toPlainText()
    assert "no quality flags" in text and "missing" not in text and "failed" not in text
    window.close()


def test_review_window_runs_as_its_own_program():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ui.review", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "collector review" in result.stdout
