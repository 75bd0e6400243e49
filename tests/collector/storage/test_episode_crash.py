"""SIGKILL a writing process: the SWMR file keeps exactly what was flushed, and recovers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.storage.reader import EpisodeError, open_episode, recover_episode, validate_episode

ROOT = Path(__file__).resolve().parents[3]

# The child records a 1 kHz glove and a 30 fps JPEG camera (timestamps faked, no sleeping at the
# glove rate) and reports on stdout before ("F") and after ("D") every flush what the file holds.
CHILD = r"""
import json, sys, time
import numpy as np
from collector.storage.writer import HDF5EpisodeWriter
from collector.wire.protocol import Sample
from collector.wire.streams import FieldSpec, StreamSpec

path, interval, frame = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
specs = [StreamSpec("glove/hand", "state", 1000, [FieldSpec("q", "<f4", (8,)), FieldSpec("p", "<u2", (5,))]),
         StreamSpec("cam0/color", "color", 30, [FieldSpec("rgb", "|u1", (frame, frame, 3))])]
w = HDF5EpisodeWriter(path, specs, {"task": "crash"}, compression="lz4", color_encoding="jpeg")
t0, i, last = 1_700_000_000_000_000_000, 0, time.monotonic()
rgb = np.zeros((frame, frame, 3), np.uint8)
while True:
    t = t0 + i * 1_000_000
    w.append(Sample("glove", "glove/hand", i, i, t, {"q": np.full(8, i, np.float32),
                                                      "p": np.full(5, i % 65536, np.uint16)}), t + 1)
    if i % 33 == 0:
        rgb[:] = (i // 33) % 200
        w.append(Sample("cam0", "cam0/color", i // 33, i, t, {"rgb": rgb}), t + 2)
    if i % 100 == 0:
        w.add_event(t, "marker", "", {"i": i})
    i += 1
    if interval == 0 or time.monotonic() - last >= interval:
        pending = {k: w.counts[k] + w.buffered[k] for k in w.counts}
        print("F", json.dumps(pending), flush=True)
        w.flush()
        print("D", json.dumps(w.counts), flush=True)
        last = time.monotonic()
    if interval:
        time.sleep(0.0002)
"""


def _reports(child_output):
    return [(kind, json.loads(data)) for kind, data in
            (line.split(" ", 1) for line in child_output.splitlines() if line.strip())]


def _run(path, interval, frame, flushes, delay_s):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(interval), str(frame)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen, done, deadline = [], 0, time.monotonic() + 15
    try:
        while done < flushes:
            line = child.stdout.readline()
            assert line, f"child died: {child.stderr.read()}"
            seen.append(line)
            done += line.startswith("D")
            assert time.monotonic() < deadline, "child too slow"
        time.sleep(delay_s)
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read()  # whatever the child printed before it died
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return _reports("".join(seen) + rest)


def _check_contents(ep, counts):
    for stream, n in counts.items():
        assert ep.count(stream) == n, stream
        seq = ep.timestamps(stream)["seq"]
        assert np.array_equal(seq, np.arange(n)), stream
    q = ep.frames("glove/hand", "q")
    assert np.array_equal(q[:, 0], np.arange(len(q), dtype=np.float32))
    if counts["cam0/color"]:
        last = counts["cam0/color"] - 1
        frame = ep.frames("cam0/color", "rgb", last)
        assert abs(int(frame.mean()) - last % 200) <= 2


def test_sigkill_between_flushes_keeps_exactly_the_flushed_samples(tmp_path):
    path = tmp_path / "sub" / "episode.h5"
    reports = _run(path, interval=0.2, frame=64, flushes=3, delay_s=0.07)
    flushed = [data for kind, data in reports if kind == "D"][-1]
    assert flushed["glove/hand"] > 0 and flushed["cam0/color"] > 0
    with pytest.raises(OSError):
        h5py.File(path, "r").close()  # still flagged open by the dead SWMR writer
    with h5py.File(path, "r", swmr=True) as f:
        assert f["streams/glove/hand/seq"].shape[0] == flushed["glove/hand"]
        assert f.attrs["status"] == "recording"
    with open_episode(path) as ep:
        assert ep.interrupted and ep.sync is None
        _check_contents(ep, flushed)
        markers = [e for e in ep.events() if e["kind"] == "marker"]
        assert markers and markers[-1]["detail"]["i"] < flushed["glove/hand"]
    assert any("interrupted" in p for p in validate_episode(path))

    assert recover_episode(path) == path
    with h5py.File(path, "r") as f:  # plain mode now
        assert f.attrs["status"] == "recovered"
        assert f["streams/glove/hand"].attrs["count"] == flushed["glove/hand"]
        assert f["sync/t_ns"].shape == (flushed["cam0/color"],)
        assert f["sync/glove/hand/index"].shape == (flushed["cam0/color"],)
    assert validate_episode(path) == []
    with open_episode(path) as ep:
        assert not ep.interrupted
        _check_contents(ep, flushed)
        index = ep.sync["streams"]["glove/hand"]["index"]
        assert np.array_equal(index, np.arange(flushed["cam0/color"]) * 33)
    with pytest.raises(EpisodeError, match="nothing to recover"):
        recover_episode(path)


def test_sigkill_during_flushes_leaves_a_readable_file_cut_at_a_flush(tmp_path):
    # Back-to-back flushes of big raw-ish frames: the kill most likely lands inside HDF5 writes.
    path = tmp_path / "episode.h5"
    reports = _run(path, interval=0, frame=320, flushes=4, delay_s=0.13)
    done = [data for kind, data in reports if kind == "D"][-1]
    started = reports[-1][1] if reports[-1][0] == "F" else done
    with open_episode(path) as ep:
        assert ep.interrupted
        counts = {s: ep.count(s) for s in done}
        for stream in done:  # each stream is either before or after the interrupted flush
            assert counts[stream] in (done[stream], started[stream]), (stream, counts, done, started)
        _check_contents(ep, counts)
    out = recover_episode(path, tmp_path / "recovered.h5")
    assert validate_episode(out) == [] and path.exists()
    with open_episode(out) as ep:
        assert ep.attrs["status"] == "recovered"
        assert {s: ep.count(s) for s in done} == counts
