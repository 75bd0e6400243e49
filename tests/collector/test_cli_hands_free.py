"""``collector record`` hands-free, as a user runs it (the one real-process test of issue 20,
``-m slow``): the scripted glove's stretch of work becomes an episode, cut by the recorder on its
own, named and tagged like any other; a bad option is named before anything starts."""

from pathlib import Path

import pytest

from collector.cli import main
from collector.storage.reader import open_episode, validate_episode
from tests.collector.test_cli import run_cli

CONFIG = """
[recording]
pre_roll_s = 1.0

[recording.hands_free.activity]
idle_s = 1.0
min_episode_s = 0.5

[session]
glove_record_button = false

[[nodes]]
name = "cam0"
driver = "sim_camera"
options = { width = 160, height = 120 }

[[nodes]]
name = "glove"
driver = "sim_glove"

[nodes.options]
rate_hz = 100.0
# Played in a loop from the glove's start: a recorder that starts late gets the next stretch.
script = [{ do = "idle", s = 3.0 }, { do = "work", s = 1.0 }]
"""


@pytest.mark.slow  # ~17 s: the processes start, the script idles, works, idles
def test_always_on_records_the_work_stretch_as_an_episode(tmp_path):
    config = tmp_path / "rig.toml"
    config.write_text(CONFIG)
    result = run_cli("record", "--config", str(config), "--hands-free", "always_on",
                     "--episodes", "1", "--duration", "90", "--output", str(tmp_path / "rec"),
                     "--task", "wear", "--outcome", "success", "-q")
    assert result.returncode == 0, result.stderr
    assert "hands-free (always_on)" in result.stderr
    (path,) = [Path(line) for line in result.stdout.splitlines() if line.endswith(".h5")]
    assert validate_episode(path) == []
    # Nothing else was recorded, not even while the session closed (the glove is ignored then).
    kept = [p for p in (tmp_path / "rec").rglob("*.h5") if ".trash" not in p.parts]
    assert kept == [path]
    with open_episode(path) as episode:
        attrs = dict(episode.attrs)
    assert (attrs["trigger"], attrs["end_trigger"]) == ("activity", "activity")
    assert attrs["task"] == "wear" and attrs["outcome"] == "success"
    # One stretch of work: at least its 1 s, at most a whole grasp (a stretch ends with nothing
    # in the hand), never two (they are 3 s apart, idle_s is 1 s).
    assert 0.9 <= attrs["duration_s"] <= 5.0, result.stderr


@pytest.mark.slow  # ~20 s of real processes
def test_the_episode_running_when_the_session_ends_is_kept(tmp_path):
    # The unscripted simulated operator never rests: one activity episode runs until the end.
    result = run_cli("record", "--sim", "--hands-free", "always_on", "--duration", "8",
                     "--episodes", "5", "--output", str(tmp_path / "rec"), "--outcome", "failure",
                     "--glove-rate", "100", "-q")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.endswith(".h5")]
    with open_episode(Path(line)) as episode:
        attrs = dict(episode.attrs)
    assert (attrs["trigger"], attrs["end_trigger"]) == ("activity", "manual")
    assert attrs["outcome"] == "failure"


def test_a_bad_hands_free_option_is_named_before_anything_starts(tmp_path, capsys):
    config = tmp_path / "rig.toml"
    config.write_text(CONFIG.replace("min_episode_s = 0.5", "min_episode_s = 9.0"))
    assert main(["record", "--config", str(config), "--output", str(tmp_path / "rec")]) != 0
    assert "min_episode_s + pad_s must be <= 4.5 s" in capsys.readouterr().err




def test_between_episodes_the_status_line_shows_the_pre_roll():
    from collector.cli import _status_line

    status = {"streams": {"glove/hand": {"rate_hz": 100.0, "nominal_hz": 100.0, "gaps": 0}},
              "episode": None, "pre_roll": {"held_s": 2.5, "held_mb": 61.2, "limit_mb": 1024.0}}
    assert _status_line(status) == "glove/hand 100/100 Hz  pre-roll 2.5 s 61/1024 MB"
