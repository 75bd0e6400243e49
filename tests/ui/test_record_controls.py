"""The record controls show what the next episode's pre-roll holds (seconds and memory against
its limit), from the model's last status, and nothing while recording."""

from __future__ import annotations

from types import SimpleNamespace

from collector.config import sim_config
from collector.recording.collect import CollectModel


def test_the_pre_roll_is_shown_between_episodes(qtbot):
    from ui.collect.controls import QtRecordControls

    model = CollectModel(sim_config(), session=SimpleNamespace(episodes_recorded=0))
    model.opened = True
    controls = QtRecordControls(model)
    qtbot.addWidget(controls)
    model.status = {"pre_roll": {"configured_s": 3.0, "held_s": 2.5, "held_mb": 61.2,
                                 "limit_mb": 1024.0, "samples": 900}}
    controls.refresh()
    assert controls.pre_roll.text() == "Pre-roll: 2.5 of 3 s held, 61 of 1024 MB"
    model.state = "recording"
    controls.refresh()
    assert controls.pre_roll.text() == ""
