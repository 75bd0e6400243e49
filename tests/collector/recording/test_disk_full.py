"""A full disk stops the episode with a clear message and loses nothing already recorded."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from collector.cli import main as cli_main

from collector.config import sim_config
from collector.storage.reader import EpisodeError, open_episode, validate_episode
from collector.recording.session import Session, SessionError


@pytest.fixture
def small_disk():
    """A 160 MB tmpfs: a real filesystem that fills up in seconds of raw video."""
    mount = Path(f"/tmp/collector-small-{uuid.uuid4().hex[:6]}")
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    mount.rmdir()


def record_until_stopped(output: Path, reserve_mb: float) -> tuple[str, str, Session]:
    """Record until the recorder stops; return (its error, the episode path, the session)."""
    config = sim_config(seed=6)
    config.recording.output = output
    config.recording.min_free_gb = 0.05
    config.recording.reserve_mb = reserve_mb
    session = Session(config)
    session.open()
    path = session.start_episode()["path"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status = session.status()
        except SessionError as exc:  # HDF5 may take the recorder down with it on ENOSPC
            return str(exc), path, session
        if not status["recording"]:
            assert status["last_path"] == path
            return status["error"], path, session
        time.sleep(0.2)
    session.close()
    raise AssertionError("the recording never stopped on a full disk")


def test_low_disk_stops_and_closes_the_episode_cleanly(small_disk):
    error, path, session = record_until_stopped(small_disk, reserve_mb=64)
    try:
        assert "MB left" in error and "recording.reserve_mb" in error
        with pytest.raises(SessionError, match="MB left"):
            session.stop_episode()
    finally:
        session.close()
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert ep.attrs["status"] == "complete" and "MB left" in ep.attrs["end_reason"]
        assert ep.count("cam0/color") >= 30  # about 2 s of raw RGB-D fit before the reserve


def test_a_disk_that_fills_anyway_gives_a_clear_error(small_disk):
    """With no reserve the disk really fills. The operator gets a clear error (HDF5 may even take
    the recorder down with it) and the file is either readable up to a flush or reported as
    damaged by name, never a crash of the app. Keeping the data through ENOSPC itself is the
    reason for ``reserve_mb``."""
    error, path, session = record_until_stopped(small_disk, reserve_mb=0)
    session.close()
    # Either HDF5 hit ENOSPC, or the recorder's own free-space check saw the disk full first.
    assert any(text in error for text in ("No space left", "recorder process exited", "MB left")), error
    try:
        with open_episode(path) as ep:
            assert ep.count("cam0/color") >= 30
    except EpisodeError as exc:
        assert path in str(exc) and "corrupt" in str(exc)


def interrupted_episode(folder: Path) -> Path:
    """An episode whose writer died mid-recording (status ``recording``), 2 s of 30 fps frames."""
    from collector.storage.writer import HDF5EpisodeWriter
    from collector.wire.protocol import Sample
    from collector.wire.streams import FieldSpec, StreamSpec

    specs = [StreamSpec("cam0/color", "color", 30.0, [FieldSpec("rgb", "uint8", (240, 320, 3))]),
             StreamSpec("glove/hand", "state", 200.0, [FieldSpec("joints", "float32", (22,))])]
    path = folder / "full.h5"
    writer = HDF5EpisodeWriter(path, specs, {"task": "fill"})
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for k in range(60):
        t = time.time_ns() + k * 33_000_000
        writer.append(Sample("cam0", "cam0/color", k, t, t, {"rgb": frame}), t)
        for j in range(7):
            writer.append(Sample("glove", "glove/hand", 7 * k + j, t, t,
                                 {"joints": np.full(22, j, np.float32)}), t)
        if k % 15 == 14:
            writer.flush()
    writer.abort()  # what a dying recorder leaves: status "recording"
    return path


@pytest.mark.parametrize("left_kb", [256, 0], ids=["256KB-free", "half-written-flush-0-free"])
def test_recover_in_place_on_a_full_disk(small_disk, capsys, left_kb):
    path = interrupted_episode(small_disk)
    if not left_kb:  # a flush cut short by the full disk: bytes past the superblock's end of file
        with open(path, "ab") as fh:
            fh.write(b"\2" * (1 << 20))
    # Fill the disk to within left_kb: far too little for a recovered copy of the 14 MB file.
    with open(small_disk / "filler", "wb") as fh:
        try:
            while shutil.disk_usage(small_disk).free > left_kb << 10:
                fh.write(b"\1" * (64 << 10))
                fh.flush()
        except OSError:
            pass
    assert shutil.disk_usage(small_disk).free <= max(left_kb << 10, 64 << 10)
    assert cli_main(["recover", str(path)]) == 0, capsys.readouterr()
    assert "recovered" in capsys.readouterr().out
    assert [p for p in validate_episode(path) if "ledger" not in p] == []
    with open_episode(path) as ep:
        assert ep.attrs["status"] == "recovered"
        assert ep.count("cam0/color") == 60 and ep.sync is not None
    assert not (small_disk / ".full.h5.writing").exists()


def test_the_disk_full_message_never_shows_a_negative_figure():
    from collector.storage.library import format_free_space

    for free_mb, reserve_mb in ((-20.0, 0), (0.0, 0), (12.4, 64), (-3.2, 64), (1500.0, 64)):
        text = format_free_space(free_mb, reserve_mb, "/data/recordings")
        assert "-" not in text.replace("/data/recordings", "").replace("recording.reserve_mb", ""), text
        assert "/data/recordings" in text and "recording.reserve_mb" in text, text
    assert "disk is full" in format_free_space(-20.0, 0, "/x")
    assert "12 MB left" in format_free_space(12.4, 64, "/x")
