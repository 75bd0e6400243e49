import os
import sys
from pathlib import Path

# Tests import this checkout's packages and spawn nodes the same way as the installed app.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
