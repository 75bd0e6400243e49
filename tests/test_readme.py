"""The README runs as written: every command in its ```bash blocks, in order, in a fresh folder.

Markers in the README: a block after ``<!-- readme-test: skip (why) -->`` is not run (installing
packages); a command whose comment starts with ``[hardware]`` or ``[window]`` is not run; one
marked ``[long]`` runs as its shortened twin from :data:`TWINS` (fewer seconds, episodes,
minutes). ``FILE`` stands for the episode the first command records (the README says so).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOT_RUN = ("[hardware]", "[window]")

#: README command (without its comment) -> what the test runs instead, and the exit codes that
#: count as working (124: still running when ``timeout`` stopped it, as a server should).
TWINS: dict[str, tuple[str, tuple[int, ...]]] = {
    "collector record --sim --cameras 2 --glove-rate 1000 --compression lz4 --duration 30":
        ("collector record --sim --cameras 2 --glove-rate 1000 --compression lz4 --duration 3 -q", (0,)),
    "collector record --config station.toml --episodes 5 --duration 20":
        ("collector record --config station.toml --episodes 2 --duration 3 -q", (0,)),
    "collector wam train recordings/ --out wam.pt --minutes 20":
        ("collector wam train recordings/ --out wam.pt --steps 4 --val-every 2", (0,)),
    "collector calibrate latency":
        ("collector calibrate latency --seconds 6", (0,)),
    "python -m devices.glove.firmware --link /tmp/glove0 --rate 1000":
        ("timeout 3 python -m devices.glove.firmware --link glove0 --rate 1000 < /dev/null", (124,)),
}


def readme_commands(text: str) -> list[tuple[str, str]]:
    """``(command, comment)`` of every line of the README's ```bash blocks (continuations
    joined), skipping blocks marked ``<!-- readme-test: skip ... -->``."""
    commands, block, skip, previous = [], None, False, ""
    for line in text.splitlines():
        if block is None:
            if line.startswith("```bash"):
                block, skip = [], previous.startswith("<!-- readme-test: skip")
            elif line.strip():
                previous = line.strip()
            continue
        if line.startswith("```"):
            if not skip:
                commands += block
            block, previous = None, ""
            continue
        if block and block[-1][0].endswith("\\"):
            command, _ = block.pop()
            line = command[:-1] + " " + line.strip()
        command, *comment = re.split(r"\s+#\s", line, maxsplit=1)
        comment = comment[0] if comment else ""
        block.append((command.strip(), comment.strip()))
    return [(c, comment) for c, comment in commands if c]


def test_the_readme_markers_are_known():
    for command, comment in readme_commands(README.read_text()):
        marker = re.match(r"\[(\w+)\]", comment)
        if marker:
            assert f"[{marker.group(1)}]" in (*NOT_RUN, "[long]"), comment
        if comment.startswith("[long]"):
            assert command in TWINS, f"no shortened twin for the [long] command: {command}"


# ~80 s on a quiet 2-core machine; with two busy competitors it once passed 240 s.
@pytest.mark.timeout(420)
def test_every_readme_command_runs(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", COLLECTOR_README_TEST="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    episode = None
    ran = []
    for command, comment in readme_commands(README.read_text()):
        if comment.startswith(NOT_RUN):
            continue
        expected: tuple[int, ...] = (0,)
        if comment.startswith("[long]"):
            command, expected = TWINS[command]
        if "FILE" in command:
            assert episode is not None, "FILE is used before an episode was recorded"
            command = command.replace("FILE|DIR", shlex.quote(episode)).replace("FILE", shlex.quote(episode))
        # ipc endpoints and links under /tmp go into this test's folder (runs may overlap).
        command = command.replace("ipc:///tmp/", f"ipc://{tmp_path}/")
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode in expected, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr[-2000:]}"
        if episode is None and command.startswith("collector record"):
            episode = result.stdout.strip().splitlines()[-1]
        ran.append(command)
    assert episode and len(ran) >= 20


@pytest.mark.parametrize("text, expected", [
    ("```bash\na  # one\nb \\\n  c  # two\n```\n", [("a", "one"), ("b  c", "two")]),
    ("<!-- readme-test: skip (why) -->\n```bash\na\n```\n```bash\nb\n```\n", [("b", "")]),
])
def test_commands_are_extracted(text, expected):
    assert readme_commands(text) == expected
