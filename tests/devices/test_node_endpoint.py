"""``python -m devices`` with an ipc endpoint in a folder that is not there yet."""

import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_the_ipc_folder_is_created(tmp_path):
    base = tmp_path / "a" / "b" / "cam0"
    proc = subprocess.Popen([sys.executable, "-m", "devices", "sim_camera", "--name", "cam0",
                             "--endpoint", f"ipc://{base}"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: Path(f"{base}.ctl").exists() or proc.poll() is not None, 60)
        assert proc.poll() is None, proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_endpoint_that_cannot_be_bound_is_one_line():
    result = subprocess.run([sys.executable, "-m", "devices", "sim_camera", "--name", "cam0",
                             "--endpoint", "ipc:///proc/nonexistent/dir/x"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/proc/nonexistent/dir" in lines[0], \
        result.stderr
