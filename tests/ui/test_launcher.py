"""The ``collector`` entry point: commands go to the headless CLI without loading Qt."""

import subprocess
import sys


def test_cli_commands_do_not_load_qt(tmp_path):
    code = ("import sys; from ui.launcher import main; rc = main(['validate', sys.argv[1]]); "
            "print(rc, 'PySide6' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.h5")],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "False"], out.stderr


def test_gui_without_display_says_what_to_do(monkeypatch, capsys):
    from ui.app import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2
    assert "xvfb-run" in capsys.readouterr().err
