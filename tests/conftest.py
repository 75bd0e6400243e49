import os
import sys
from pathlib import Path

# Tests import this checkout's packages and spawn nodes the same way as the installed app.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# What the app keeps per user (a station's latency calibration, ...) goes to a folder of this
# run, never to the home folder: a test must not change how the next run, or the user's own
# recordings, behave. Set before any test or child process reads it.
if "COLLECTOR_TEST_KEEP_XDG" not in os.environ:
    import tempfile

    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="collector-tests-xdg-")
