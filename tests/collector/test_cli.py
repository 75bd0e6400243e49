"""The headless CLI as a user runs it: real processes, real files."""

import signal
import subprocess
import sys
import time
from pathlib import Path


from collector.cli import main
from collector.storage.reader import open_episode

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_record_info_validate(tmp_path):
    result = run_cli("record", "--sim", "--duration", "2", "--task", "pick cube", "--seed", "3",
                     "--output", str(tmp_path), "--outcome", "failure")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.is_relative_to(tmp_path)
    assert path.parent.parent.name == "pick-cube"  # the documented path pattern, made file-safe
    info = run_cli("info", str(path))
    assert info.returncode == 0, info.stderr
    for stream in ("cam0/color", "cam0/depth", "glove/hand"):
        assert stream in info.stdout
    valid = run_cli("validate", str(path))
    assert valid.returncode == 0 and "valid" in valid.stdout
    with open_episode(path) as ep:
        assert ep.attrs["outcome"] == "failure"
        assert ep.attrs["task"] == "pick cube"


def test_sigterm_finishes_the_episode_cleanly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "record", "--sim", "-q",
                             "--output", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.rglob("*.h5")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    path = Path(out.strip().splitlines()[-1])
    assert run_cli("validate", str(path)).returncode == 0
    with open_episode(path) as ep:
        assert ep.attrs["status"] == "complete" and ep.count("cam0/color") > 20


def test_validate_and_info_reject_a_file_that_is_not_an_episode(tmp_path, capsys):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    assert main(["validate", str(bogus)]) == 1
    assert main(["info", str(bogus)]) == 1
    assert "error" in capsys.readouterr().err


def test_config_typo_is_named_exactly(tmp_path, capsys):
    config = tmp_path / "station.toml"
    assert main(["config", str(config)]) == 0
    config.write_text(config.read_text().replace("[recording]", "[recording]\ncompresion = 'lz4'"))
    assert main(["record", "--config", str(config), "--duration", "1"]) == 2
    assert "recording: unknown option 'compresion'" in capsys.readouterr().err


def test_record_with_jpeg_color_and_lz4(tmp_path):
    result = run_cli("record", "--sim", "--duration", "1.5", "-q", "--output", str(tmp_path),
                     "--color-encoding", "jpeg", "--compression", "lz4")
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip().splitlines()[-1]
    assert run_cli("validate", path).returncode == 0
    with open_episode(path) as ep:
        assert ep.encodings("cam0/color") == {"rgb": "jpeg"}
        frame = ep.frames("cam0/color", "rgb", [3])
        assert frame.shape == (1, 480, 640, 3) and frame.dtype == "uint8" and frame.std() > 10
        assert ep.attrs["compression"] == "lz4"
