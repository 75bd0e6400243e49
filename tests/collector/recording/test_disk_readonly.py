"""A recordings folder that cannot be written: the episode is refused at once, with the reason
and the path, and the session stays usable."""

import subprocess
import uuid
from pathlib import Path

import pytest

from collector.config import sim_config
from collector.recording.session import Session, SessionError


@pytest.fixture
def readonly_disk():
    mount = Path(f"/tmp/collector-ro-{uuid.uuid4().hex[:6]}")
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,ro", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
    mount.rmdir()


def test_a_read_only_disk_refuses_the_episode_clearly(readonly_disk):
    config = sim_config(seed=1)
    config.recording.output = readonly_disk / "recordings"
    config.recording.min_free_gb = 0.0
    with Session(config) as session:
        with pytest.raises(SessionError) as refused:
            session.start_episode()
        message = str(refused.value)
        assert "Read-only file system" in message and str(readonly_disk) in message, message
        status = session.status()  # the recorder survived and is not recording
        assert status["ok"] and not status["recording"]
    assert not list(readonly_disk.rglob("*"))
