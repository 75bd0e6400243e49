"""Audible cues at episode start and stop: short tones, played without blocking the GUI.

QtMultimedia needs PulseAudio's library, which many lab PCs (and CI) lack, so tones are written
once as WAV files and played by the first player found (``paplay``, ``aplay``, ``afplay``),
falling back to the system bell.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from PySide6 import QtWidgets

RATE = 22050
#: (frequencies in Hz, seconds per tone): rising for start, falling for stop.
CUES = {"start": ((660, 880), 0.09), "stop": ((880, 587), 0.11), "error": ((220, 220), 0.15)}


def _tone(frequencies, seconds) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    envelope = np.minimum(1, np.minimum(t, t[::-1]) / 0.01)
    parts = [0.4 * np.sin(2 * np.pi * f * t) * envelope for f in frequencies]
    return (np.concatenate(parts) * 32767).astype("<i2")


class Cues:
    """Plays a cue by name; ``enabled`` may be switched at any time."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._player = next((shutil.which(p) for p in ("paplay", "aplay", "afplay") if shutil.which(p)), None)
        self._dir = Path(tempfile.mkdtemp(prefix="collector-cues-"))
        self._files = {}
        for name, (freqs, seconds) in CUES.items():
            path = self._dir / f"{name}.wav"
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(RATE)
                wav.writeframes(_tone(freqs, seconds).tobytes())
            self._files[name] = path
        #: Cues played so far (tests and the status bar read it).
        self.played: list[str] = []

    def play(self, name: str) -> None:
        if not self.enabled or name not in self._files:
            return
        self.played.append(name)
        if self._player:
            args = [self._player, "-q", str(self._files[name])] if "aplay" in self._player else \
                [self._player, str(self._files[name])]
            try:
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                return
            except OSError:
                pass
        QtWidgets.QApplication.beep()

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
