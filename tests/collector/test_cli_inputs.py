"""Input the CLI must refuse (one line, exit code 2) or take as a user means it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import build_parser, main
from collector.config import load_config
from tests.collector.sim_episodes import write_sim_episode

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], cwd=kwargs.pop("cwd", ROOT),
                          capture_output=True, text=True, timeout=120, **kwargs)


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [["--duration", "-5"], ["--duration", "0.0", "--episodes", "0"],
                                  ["--episodes", "0"], ["--episodes", "-2"]])
def test_record_refuses_non_positive_durations_and_counts(tmp_path, args):
    result = run_cli("record", "--sim", "--output", str(tmp_path), *args)
    assert result.returncode == 2
    assert not list(tmp_path.rglob("*.h5"))
    assert "must be" in one_line_error(result)


def test_validate_a_folder_checks_every_episode_with_a_summary(tmp_path, capsys):
    good = write_sim_episode(tmp_path / "task" / "good.h5", seconds=1.0)
    write_sim_episode(tmp_path / "task" / "other.h5", seconds=1.0, seed=2)
    bad = tmp_path / "task" / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    assert main(["validate", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: valid" in out
    assert f"{bad}: INVALID" in err
    assert "3 episodes: 2 valid, 1 invalid" in out
    bad.unlink()
    assert main(["validate", str(tmp_path)]) == 0
    assert "2 episodes: 2 valid" in capsys.readouterr().out


def test_validate_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert "no episodes" in capsys.readouterr().err


def test_curate_refuses_a_trim_outside_the_episode(tmp_path, capsys):
    path = write_sim_episode(tmp_path / "e.h5", seconds=2.0)
    assert main(["curate", str(path), "--trim", "0.5", "11.5"]) == 2
    assert "outside the episode" in capsys.readouterr().err
    assert main(["curate", str(path), "--trim", "5", "6"]) == 2
    assert main(["curate", str(path), "--trim", "0.2", "1.5"]) == 0


def _config(tmp_path, extra: str) -> Path:
    config = tmp_path / "station.toml"
    assert main(["config", str(config)]) == 0
    config.write_text(config.read_text() + extra)
    return config


def test_unknown_driver_is_refused_at_config_load_before_any_process(tmp_path):
    config = _config(tmp_path, '\n[[nodes]]\nname = "cam9"\ndriver = "realsence"\n')
    result = run_cli("record", "--config", str(config), "--duration", "1", "--output", str(tmp_path))
    assert result.returncode == 2
    line = one_line_error(result)
    assert "unknown driver 'realsence'" in line and "cam9" in line
    assert not list(tmp_path.rglob("*.h5"))


def test_unknown_driver_option_is_refused_at_config_load(tmp_path):
    config = tmp_path / "station.toml"
    assert main(["config", str(config)]) == 0
    config.write_text(config.read_text().replace("view = 0", "view = 0\nfsp = 30"))
    result = run_cli("record", "--config", str(config), "--duration", "1", "--output", str(tmp_path))
    assert result.returncode == 2
    assert "cam0.options: unknown option 'fsp'" in one_line_error(result)


def test_gui_refuses_an_unknown_driver_before_opening(tmp_path, capsys):
    from ui.app import main as gui_main

    config = _config(tmp_path, '\n[[nodes]]\nname = "cam9"\ndriver = "realsence"\n')
    assert gui_main(["--config", str(config)]) == 2
    assert "unknown driver 'realsence'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["record", "--config"], ["gui", "--config"]])
def test_a_missing_config_file_is_one_line(tmp_path, command):
    code = ("import sys; from ui.launcher import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, *command, str(tmp_path / "station.toml")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 2
    line = one_line_error(result)
    assert "station.toml" in line and "collector config" in line  # says how to make one


def test_a_closed_pipe_ends_quietly(tmp_path):
    path = write_sim_episode(tmp_path / "e.h5", seconds=1.0)
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "ui.launcher", "info", str(path)], cwd=ROOT,
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.stderr == ""


def test_from_file_is_resolved_against_the_config_folder(tmp_path):
    folder = tmp_path / "station"
    folder.mkdir()
    (folder / "station.toml").write_text(
        '[[nodes]]\nname = "cam0"\ndriver = "realsense"\n'
        'options = { from_file = "demo.db3", calibration_dir = "~/gloves" }\n'
        '[[nodes]]\nname = "cam1"\ndriver = "realsense"\n'
        f'options = {{ from_file = "{tmp_path / "abs.db3"}" }}\n')
    config = load_config(folder / "station.toml")
    assert config.nodes[0].options["from_file"] == str(folder / "demo.db3")
    assert config.nodes[0].options["calibration_dir"] == "~/gloves"
    assert config.nodes[1].options["from_file"] == str(tmp_path / "abs.db3")


def test_help_lists_the_gui_command():
    assert "collector gui" in build_parser().format_help()
    result = run_cli("--help")
    assert "gui" in result.stdout.split("positional arguments")[-1] or "collector gui" in result.stdout


def test_trash_restore_takes_the_original_path_too(tmp_path, capsys):
    path = write_sim_episode(tmp_path / "pick" / "2026-11-29" / "e.h5", seconds=1.0)
    assert main(["trash", str(path)]) == 0
    assert not path.exists()
    assert main(["trash", "--restore", str(path)]) == 0
    assert path.is_file()
    assert main(["trash", "--restore", str(path)]) == 1  # not in the trash now
    assert "not in the trash" in capsys.readouterr().err
