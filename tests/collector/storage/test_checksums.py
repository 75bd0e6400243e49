"""Checksums: a flipped bit or a zeroed block inside sample data is an error that names the stream
and the samples, not a silently wrong pixel (Fletcher-32 per HDF5 chunk, CRC32 per JPEG frame);
exports and the dataset skip a damaged frame with a named, counted reason."""

import functools
import random
import re
import shutil

import h5py
import numpy as np
import pytest

from tests.collector import sim_episodes
from collector.cli import main as cli_main
from collector.dataset import EpisodeDataset
from collector.storage.writer import HDF5EpisodeWriter
from collector.storage.reader import deep_report
from collector.storage.reader import open_episode, validate_episode
from tests.collector.sim_episodes import write_sim_episode


def schema_problems(path):
    # Episodes written straight through EpisodeWriter carry no integrity ledger (the recorder
    # writes it); that is not what these tests are about.
    return [p for p in validate_episode(path) if "ledger" not in p]


def sample_chunks(path):
    """Every stored chunk of every dataset under /streams: (stream, dataset, byte offset, size,
    first sample, last sample)."""
    chunks = []
    with open_episode(path) as ep:
        for stream in ep.streams:
            group, count = ep.h5[f"streams/{stream}"], ep.count(stream)
            ends = {}
            for key in group:
                if key.endswith(".offsets"):
                    ends[key[:-len(".offsets")]] = group[key][:count].astype(np.int64)
            for key, ds in group.items():
                for i in range(ds.id.get_num_chunks()):
                    info = ds.id.get_chunk_info(i)
                    first = info.chunk_offset[0]
                    last = first + ds.chunks[0] - 1
                    if key.endswith(".jpeg"):  # a byte range of the concatenated frames
                        e = ends[key[:-len(".jpeg")]]
                        first = int(np.searchsorted(e, first, side="right"))
                        last = int(np.searchsorted(e, last, side="right"))
                    chunks.append((stream, key, info.byte_offset, info.size, first,
                                   min(last, count - 1)))
    return chunks


def corrupted_copies(good, folder, n, seed):
    """``n`` copies, half with one flipped bit and half with a zeroed 4 KB block, each inside a
    data chunk's byte range; yields (path, the chunk hit)."""
    data, rng = good.read_bytes(), random.Random(seed)
    chunks = sample_chunks(good)
    for case in range(n):
        stream, key, offset, size, first, last = chunk = rng.choice(chunks)
        buf = bytearray(data)
        if case % 2:
            at = offset + rng.randrange(size)
            buf[at] ^= 1 << rng.randrange(8)
        else:
            block = min(4096, size)
            at = offset + rng.randrange(size - block + 1)
            if any(buf[at:at + block]):
                buf[at:at + block] = bytes(block)
            else:  # already zero (unused space): flip one bit instead
                buf[at] ^= 1
        path = folder / f"case{case}.h5"
        path.write_bytes(bytes(buf))
        yield path, chunk


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_every_corruption_inside_a_data_chunk_is_caught_by_deep_validate(tmp_path, capsys, encoding):
    good = write_sim_episode(tmp_path / "good.h5", seed=5, seconds=1.0, width=64, height=48,
                             color_encoding=encoding)
    assert deep_report(good) == ([], True)
    caught = missed_by_plain = 0
    for path, (stream, key, *_, first, last) in corrupted_copies(good, tmp_path, 30, seed=11):
        if not schema_problems(path):
            missed_by_plain += 1
        code = cli_main(["validate", "--deep", str(path)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code == 1, f"{path.name}: corruption in {stream} {key} passed validate --deep"
        damaged = re.findall(rf"{re.escape(stream)}: samples? (\d+)(?:-(\d+))? damaged", err)
        assert damaged, (key, err)
        lo, hi = int(damaged[0][0]), int(damaged[0][1] or damaged[0][0])
        assert first <= hi and lo <= last, (key, first, last, err)  # the damaged chunk's samples
        caught += 1
        path.unlink()
    assert caught == 30
    print(f"{encoding}: {caught}/30 caught by validate --deep, {missed_by_plain} passed plain validate")


def test_files_without_checksums_stay_valid_and_readable(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sim_episodes, "HDF5EpisodeWriter", functools.partial(HDF5EpisodeWriter, checksums=False))
    old = write_sim_episode(tmp_path / "old.h5", seed=6, seconds=0.5, color_encoding="jpeg")
    with h5py.File(old, "r") as f:
        assert "rgb.crc32" not in f["streams/cam0/color"]
        assert not f["streams/glove/hand/t_host_ns"].fletcher32
    assert schema_problems(old) == []
    assert deep_report(old) == ([], False)  # nothing damaged, and no checksums to verify
    with open_episode(old) as ep:
        assert ep.frames("cam0/color", "rgb", slice(0, 3)).shape == (3, 48, 64, 3)


def test_new_files_carry_fletcher32_and_a_crc_per_jpeg_frame(tmp_path):
    path = write_sim_episode(tmp_path / "new.h5", seed=7, seconds=0.5, color_encoding="jpeg")
    with h5py.File(path, "r") as f:
        g = f["streams/cam0/color"]
        assert g["rgb.crc32"].dtype == np.uint32 and g["rgb.crc32"].shape == g["rgb.offsets"].shape
        assert all(f[f"streams/glove/hand/{k}"].fletcher32 for k in ("seq", "t_host_ns", "wrist_pos"))
        assert g["t_host_ns"].fletcher32 and f["events/t_ns"].fletcher32


def break_frame(path, stream, field, frame):
    """Overwrite one stored JPEG frame with zeros through HDF5 (its chunk checksum stays right,
    only the frame's own CRC and its JPEG structure tell)."""
    with h5py.File(path, "r+") as f:
        ends = f[f"streams/{stream}/{field}.offsets"][:].astype(np.int64)
        start = int(ends[frame - 1]) if frame else 0
        f[f"streams/{stream}/{field}.jpeg"][start:int(ends[frame])] = 0


@pytest.mark.parametrize("crc", [True, False], ids=["with-crc", "old-file"])
def test_one_undecodable_frame_is_skipped_by_exports_and_the_dataset(tmp_path, capsys, crc):
    recs = tmp_path / "recs"
    good = write_sim_episode(recs / "good.h5", seed=8, seconds=1.0, color_encoding="jpeg")
    bad = write_sim_episode(recs / "bad.h5", seed=9, seconds=1.0, color_encoding="jpeg")
    break_frame(bad, "cam0/color", "rgb", 10)
    if not crc:
        with h5py.File(bad, "r+") as f:
            del f["streams/cam0/color/rgb.crc32"]
    assert cli_main(["validate", "--deep", str(bad)]) == 1
    assert re.search(r"cam0/color: sample 10 damaged", capsys.readouterr().err)

    for fmt, out in (("robomimic", tmp_path / "rm.hdf5"), ("aloha", tmp_path / "act"),
                     ("lerobot", tmp_path / "lr")):
        code = cli_main(["export", fmt, str(recs), "-o", str(out), "-q"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, (fmt, captured.err)
        assert code == 0, (fmt, captured.err)
        assert re.search(r"bad\.h5.*cam0/color frame 10", captured.out), (fmt, captured.out)
        assert "1 damaged frame" in captured.out, (fmt, captured.out)
    with h5py.File(tmp_path / "rm.hdf5", "r") as f:
        assert len(f["data"]) == 2  # both episodes, the bad one without its broken step

    ds = EpisodeDataset([recs])
    assert len(ds.episodes) == 2
    assert any("cam0/color frame 10" in why for why in ds.skipped.values()), ds.skipped
    for i in range(len(ds)):
        item = ds[i]
        assert item["observation.images.cam0"].shape[-2:] == (48, 64)
