"""One driver table; a missing or broken SDK disables only its own driver, and says so.

Each check runs in a child process whose ``pyrealsense2`` (or ``serial``) is broken: a package of
that name first on ``PYTHONPATH`` whose import fails the way a bad install does (its shared
library will not load), or a meta path finder that refuses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devices import registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broken_sdk(tmp_path):
    """``env(sdk, ...)``: an environment in which importing each named SDK raises."""

    def env(*sdks: str) -> dict[str, str]:
        site = tmp_path / "broken"
        for sdk in sdks:
            (site / sdk).mkdir(parents=True, exist_ok=True)
            (site / sdk / "__init__.py").write_text(
                f"raise OSError('lib{sdk}.so: cannot open shared object file')\n")
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    return env


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_every_driver_and_finder_in_the_table_resolves():
    for name, entry in registry.DRIVERS.items():
        cls = registry.driver_class(name)
        assert cls.__module__ + ":" + cls.__name__ == entry.target
        assert hasattr(cls, "Config"), name
    assert registry.families() == {"serial": "glove", "realsense": "realsense", "uvc": "uvc"}
    with pytest.raises(ValueError, match="unknown driver 'nope' \\(known: .*sim_camera"):
        registry.driver_class("nope")


def test_no_sdk_is_imported_before_its_driver_is_used():
    code = ("import sys, devices.registry, devices.discover, devices.check, devices.__main__, "
            "devices.realsense.node, devices.glove.node, devices.glove.calibration\n"
            "print(sorted({'pyrealsense2', 'serial'} & set(sys.modules)))")
    proc = run(["-c", code], {**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_broken_realsense_sdk_disables_only_the_realsense_driver(broken_sdk, tmp_path):
    env = broken_sdk("pyrealsense2")
    proc = run(["-m", "devices", "realsense", "--name", "cam0", "--endpoint", f"ipc://{tmp_path}/cam0"],
               env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()  # one line, naming the SDK and what went wrong
    assert line.startswith("error: driver 'realsense' is unavailable: its SDK pyrealsense2")
    assert "cannot open shared object file" in line

    nodes = [{"name": "cam0", "driver": "sim_camera", "options": {"fps": 10}},
             {"name": "glove", "driver": "sim_glove"},
             {"name": "rs", "driver": "realsense", "options": {}}]
    proc = run(["-m", "devices.check", json.dumps(nodes)], env)
    (error,) = json.loads(proc.stdout)
    assert error.startswith("rs: driver 'realsense' is unavailable: its SDK pyrealsense2")

    proc = run(["-m", "devices.discover"], env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert "pyrealsense2" in found["realsense"]["error"]
    assert "devices" in found["serial"]  # the other family is still searched

    proc = run(["-m", "collector.cli", "devices"], env)
    assert proc.returncode == 0, proc.stderr
    assert "realsense: cannot search (driver 'realsense' is unavailable: its SDK pyrealsense2" in proc.stdout


def test_broken_serial_disables_the_glove_drivers_only(broken_sdk):
    env = broken_sdk("serial")
    code = ("from devices.registry import DriverUnavailable, driver_class\n"
            "driver_class('sim_camera')('cam0', {}); driver_class('sim_glove')('glove', {})\n"
            "for name in ('glove', 'glove_sim_tty'):\n"
            "    try:\n"
            "        driver_class(name)\n"
            "    except DriverUnavailable as exc:\n"
            "        print(exc)\n")
    proc = run(["-c", code], env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["driver 'glove' is unavailable",
                                                     "driver 'glove_sim_tty' is unavailable"]
    assert all("its SDK serial cannot be imported (OSError" in line for line in lines)


def test_an_sdk_refused_by_the_import_system_is_named_too():
    # The other way an SDK goes missing: nothing to import at all.
    code = ("import sys\n"
            "class Refuse:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'pyrealsense2':\n"
            "            raise ImportError(f'No module named {name!r}')\n"
            "sys.meta_path.insert(0, Refuse())\n"
            "sys.modules.pop('pyrealsense2', None)\n"
            "from devices.__main__ import main\n"
            "sys.exit(main(['realsense', '--name', 'cam0', '--endpoint', 'ipc:///tmp/never']))\n")
    proc = run(["-c", code], {**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: driver 'realsense' is unavailable: its SDK pyrealsense2 "
                                   "cannot be imported (ImportError: No module named 'pyrealsense2')")
