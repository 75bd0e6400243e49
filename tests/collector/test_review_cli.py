"""``collector ls / report / curate / trash`` as a user runs them, on a recorded episode."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from collector.cli import main
from collector.storage.library import sample_checksum as data_checksum
from collector.review.synthetic import write_synthetic_episode, write_synthetic_ledger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def recorded(tmp_path_factory):
    """One 2 s simulated recording, made once per test session with the real recorder."""
    out = tmp_path_factory.mktemp("recorded")
    result = subprocess.run([sys.executable, "-m", "collector.cli", "record", "--sim", "--duration", "2",
                             "-q", "--task", "pick-cube", "--operator", "ana", "--color-encoding", "jpeg",
                             "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path, recorded):
    root = tmp_path / "recordings"
    target = root / "pick-cube" / "2026-01-01" / recorded.name
    target.parent.mkdir(parents=True)
    shutil.copy(recorded, target)
    write_synthetic_episode(root / "wipe" / "2026-01-02" / "wipe.h5", duration_s=5, idle_start_s=2,
                            attrs={"task": "wipe", "operator": "bo", "outcome": "success"})
    (root / "pick-cube" / "2026-01-01" / "half.h5").write_bytes(recorded.read_bytes()[:100_000])
    return root


def test_ls_lists_recorded_synthetic_and_damaged_episodes(folder, capsys):
    assert main(["ls", str(folder)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["started", "task", "operator"] and len(lines) == 4
    assert any("pick-cube" in line and "ana" in line for line in lines)
    assert any("wipe" in line and "success" in line and "idle-start" in line for line in lines)
    assert any("DAMAGED" in line and "half.h5" in line and "truncated" in line for line in lines)

    assert main(["ls", str(folder), "--json", "--task", "wipe"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["task"] for s in listed] == ["wipe"] and listed[0]["quality"]["idle"]["start_s"] > 1.5

    assert main(["ls", str(folder), "--stats"]) == 0
    stats = capsys.readouterr().out
    assert stats.startswith("3 episodes") and "success rate of labelled episodes 100% (1 of 2 labelled)" in stats and "1 damaged" in stats


def test_ls_says_what_is_missing_and_which_recording_failed(tmp_path, capsys):
    short = write_synthetic_episode(tmp_path / "short.h5", duration_s=4, stall=(2.5, 2.0),
                                    attrs={"task": "pick"})
    write_synthetic_ledger(short, undrained={"cam0/color": 45})
    failed = write_synthetic_episode(tmp_path / "failed.h5", duration_s=4, attrs={"task": "pick"},
                                     start_ns=1_790_000_100_000_000_000)
    write_synthetic_ledger(failed, failed="the receiver thread died")
    clean = write_synthetic_episode(tmp_path / "clean.h5", duration_s=4, attrs={"task": "pick"},
                                    start_ns=1_790_000_200_000_000_000)
    write_synthetic_ledger(clean)
    assert main(["ls", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    row = {name: i for i, line in enumerate(lines) for name in ("short.h5", "failed.h5", "clean.h5")
           if line.endswith(name)}
    assert "incomplete" in lines[row["short.h5"]]
    assert lines[row["short.h5"] + 1].strip() == "! cam0/color: 45 samples missing (45 tail not drained)"
    assert lines[row["short.h5"] + 2].strip() == "! cam0/color: last 1.6 s missing"
    assert "FAILED" in lines[row["failed.h5"]]
    assert lines[row["failed.h5"] + 1].strip() == "! the recording failed: the receiver thread died"
    clean_row = row["clean.h5"]
    assert "!" not in lines[clean_row] and (clean_row + 1 == len(lines) or "!" not in lines[clean_row + 1])
    assert "incomplete = " in captured.err and "failed = " in captured.err

    assert main(["ls", str(tmp_path), "--json"]) == 0
    listed = {Path(s["path"]).name: s for s in json.loads(capsys.readouterr().out)}
    assert listed["short.h5"]["integrity"][-1] == "cam0/color: last 1.6 s missing"
    assert listed["clean.h5"]["integrity"] == []


def test_curate_and_trash_from_the_command_line(folder, capsys):
    path = next((folder / "pick-cube").rglob("pick-cube_*.h5"))
    before = data_checksum(path)
    assert main(["curate", str(path), "--outcome", "success", "--tag", "clean", "--tag", "fast",
                 "--notes", "nice", "--trim", "0.2", "1.5"]) == 0
    assert main(["curate", str(path), "--untag", "fast"]) == 0
    assert "tags clean  trim 0.2-1.5 s" in capsys.readouterr().out
    with h5py.File(path) as f:
        assert (f.attrs["outcome"], json.loads(f.attrs["tags"]), f.attrs["notes"], json.loads(f.attrs["trim"])) \
            == ("success", ["clean"], "nice", [0.2, 1.5])
    assert data_checksum(path) == before
    assert main(["curate", str(path), "--trim", "3", "1"]) == 2  # refused as input, like a trim outside the episode
    assert "0 <= start_s < end_s" in capsys.readouterr().err

    assert main(["trash", str(path)]) == 0
    trashed = Path(capsys.readouterr().out.strip())
    assert trashed == folder / ".trash" / path.name and not path.exists()
    assert main(["trash", "--restore", str(trashed)]) == 0
    assert path.exists() and data_checksum(path) == before


def test_report_writes_a_self_contained_html_page(folder, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "--html", str(out)]) == 0
    page = out.read_text()
    assert page.count("<svg") >= 4  # dashboard plots
    assert page.count("data:image/jpeg;base64,") == 2  # one thumbnail per readable episode
    assert "half.h5" in page and "damaged" in page and "idle-start" in page


def test_report_says_what_is_missing_per_episode(tmp_path):
    root = tmp_path / "recordings"
    short = write_synthetic_episode(root / "short.h5", duration_s=4, stall=(2.5, 2.0), attrs={"task": "pick"})
    write_synthetic_ledger(short, undrained={"cam0/color": 45})
    failed = write_synthetic_episode(root / "failed.h5", duration_s=4, attrs={"task": "pick"},
                                     start_ns=1_790_000_100_000_000_000)
    write_synthetic_ledger(failed, failed="the receiver thread died")
    clean = write_synthetic_episode(root / "clean.h5", duration_s=4, attrs={"task": "pick"},
                                    start_ns=1_790_000_200_000_000_000)
    write_synthetic_ledger(clean)
    out = tmp_path / "report.html"
    assert main(["report", str(root), "--html", str(out)]) == 0
    rows = {name: row for row in out.read_text().split("<tr>") for name in ("short.h5", "failed.h5", "clean.h5")
            if f"{name}</small>" in row}
    assert "cam0/color: last 1.6 s missing" in rows["short.h5"]
    assert "cam0/color: 45 samples missing (45 tail not drained)" in rows["short.h5"]
    assert "the recording failed: the receiver thread died" in rows["failed.h5"]
    assert "missing" not in rows["clean.h5"] and "failed" not in rows["clean.h5"]


def test_review_command_launches_the_window_as_its_own_program(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or 0)
    assert main(["review", str(tmp_path)]) == 0
    assert calls == [[sys.executable, "-m", "ui.review", str(tmp_path)]]
