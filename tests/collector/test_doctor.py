"""``collector doctor``: each check OK or the one command that fixes it; exit 1 when the chosen
config needs something missing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from collector import doctor
from collector.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("library, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"), ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libEGL.so.1", "libegl1"),
    ("libusb-1.0.so.0", "libusb-1.0-0")])
def test_missing_libraries_map_to_debian_packages(library, package):
    assert doctor.debian_package(library) == package


def test_a_qt_plugin_with_missing_libraries_names_the_apt_command(tmp_path, monkeypatch):
    fake = tmp_path / "ldd"
    fake.write_text("#!/bin/sh\necho '\tlibxcb-icccm.so.4 => not found'\n"
                    "echo '\tlibxcb-keysyms.so.1 => not found'\necho '\tlibc.so.6 => /lib/libc.so.6'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    check = doctor.qt_platform_check()
    assert not check.ok and check.required
    assert "libxcb-icccm.so.4" in check.detail
    assert check.fix.endswith("apt-get install -y libxcb-icccm4 libxcb-keysyms1")


def test_doctor_reports_every_check_and_passes_here(tmp_path, capsys):
    assert main(["doctor", "--headless", "--output", str(tmp_path), "--write-mb", "8"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "packages", "Qt platform plugin", "display", "libusb", "serial permissions",
                 "gloves", "free disk", "disk write", "torch"):
        assert re.search(rf"^(OK  |warn|FAIL) {name}", out, re.M), name
    assert "MB/s measured" in out and out.strip().endswith("ready")


def test_doctor_exits_1_when_the_config_needs_what_is_missing(tmp_path, capsys):
    config = tmp_path / "station.toml"
    config.write_text(f'[recording]\noutput = "{tmp_path / "rec"}"\nmin_free_gb = 1e9\n'
                      '[[nodes]]\nname = "glove"\ndriver = "glove"\n'
                      'options = { port = "/dev/ttyNONE" }\n')
    assert main(["doctor", "--headless", "--config", str(config), "--write-mb", "8"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^FAIL free disk: .*\n\s+fix: ", out, re.M)
    assert re.search(r"^FAIL gloves: none attached", out, re.M)
    assert "problems to fix" in out


def test_the_readme_apt_line_is_the_list_ci_installs():
    packages = doctor.apt_packages()
    assert {"libusb-1.0-0", "xvfb", "libxcb-icccm4", "libxcb-keysyms1"} <= set(packages)
    readme = (ROOT / "README.md").read_text()
    lines = [l for l in readme.splitlines() if l.startswith("sudo apt-get install -y ")]
    assert len(lines) == 1
    assert lines[0].split("#")[0].split()[4:] == packages
    assert ".ci/apt-packages.txt" in (ROOT / ".ci" / "run").read_text()


def test_the_window_runs_the_doctor_when_qt_cannot_start(tmp_path):
    fake = tmp_path / "ldd"
    fake.write_text("#!/bin/sh\necho '\tlibxcb-icccm.so.4 => not found'\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", DISPLAY=":99")
    env.pop("QT_QPA_PLATFORM", None)
    result = subprocess.run([sys.executable, "-m", "ui.launcher", "--output", str(tmp_path / "rec")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "the window cannot start" in result.stderr
    assert "apt-get install -y libxcb-icccm4" in result.stderr + result.stdout
    assert "disk write" in result.stderr + result.stdout  # the whole report
