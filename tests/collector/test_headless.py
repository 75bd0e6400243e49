"""The headless recorder needs nothing of the GUI: ``ui/`` can be deleted (issue 14)."""

import subprocess
import sys
from pathlib import Path

from collector.storage.reader import validate_episode

ROOT = Path(__file__).resolve().parents[2]

BLOCK_UI = """
import importlib.abc, sys
class NoUI(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ui" or name.startswith("ui."):
            raise ImportError("ui/ is deleted")
sys.meta_path.insert(0, NoUI())
from collector.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_record_runs_with_the_ui_package_gone(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_UI, "record", "--sim", "--duration", "2",
         "--output", str(tmp_path), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (path,) = [line for line in result.stdout.splitlines() if line.endswith(".h5")]
    assert validate_episode(path) == []
