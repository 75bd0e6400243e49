"""Calibrating through a running session: what the collect window's Calibrate button does."""

from collector.calibration import cli as calibration_cli
from collector.config import sim_config


def test_the_window_calibrates_a_simulated_station_with_a_twin_in_the_calibration_scene(monkeypatch):
    """The collect window's simulator films the work scene, not the time code: calibrating
    through its running nodes could only fail, so a calibration-scene twin films instead."""
    calls = []
    monkeypatch.setattr(calibration_cli, "calibrate", lambda config, seconds, progress, **kw:
                        calls.append((config, seconds)) or ({"ok": True}, "saved"))

    class RunningSession:
        config = sim_config()

        def start_episode(self, **meta):
            raise AssertionError("the running nodes film no time code")

    assert calibration_cli.calibrate_in_session(RunningSession(), 6.0) == ({"ok": True}, "saved")
    assert calls and calls[0][0] is RunningSession.config and calls[0][1] == 6.0
    in_scene = calibration_cli.calibration_config(sim_config(), RunningSession.config.recording.output)
    assert calibration_cli.simulated_outside_the_scene(RunningSession.config)
    assert not calibration_cli.simulated_outside_the_scene(in_scene)
