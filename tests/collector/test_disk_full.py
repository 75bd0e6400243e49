"""A full disk stops the episode with a clear message and loses nothing already recorded."""

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from collector.config import sim_config
from collector.episode_reader import EpisodeError, open_episode, validate_episode
from collector.session import Session, SessionError


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
