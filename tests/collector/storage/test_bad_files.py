"""Truncated, foreign, schema-mismatched and corrupted HDF5 files: every entry point (info,
validate, recover, ls, report, curate, exports, the dataset, the review catalog) names the file
and says what is wrong, never a traceback; the good episodes beside them are still served."""

import json
import random
import shutil

import h5py
import numpy as np
import pytest

from collector.cli import main as cli_main
from collector.dataset import EpisodeDataset
from collector.storage.reader import EpisodeError, open_episode, validate_episode
from collector.review.catalog import EpisodeCatalog

from tests.collector.sim_episodes import write_sim_episode


def _bad_files(folder, good):
    """name -> (path, words the error must contain)."""
    files = {}
    data = good.read_bytes()
    truncated = folder / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    files["truncated"] = (truncated, "truncated or corrupt")
    text = folder / "notes.h5"
    text.write_text("not an episode\n")
    files["not hdf5"] = (text, "not an HDF5 file")
    foreign = folder / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data/obs"] = np.zeros((10, 3))
        f.attrs["env_args"] = "{}"  # a robomimic file, say
    files["foreign"] = (foreign, "not a collector episode")
    future = folder / "future.h5"
    shutil.copy(good, future)
    with h5py.File(future, "r+") as f:
        f.attrs["schema_version"] = 99
    files["newer schema"] = (future, "schema version 99")
    bad_spec = folder / "bad_spec.h5"
    shutil.copy(good, bad_spec)
    with h5py.File(bad_spec, "r+") as f:
        f["streams/glove/hand"].attrs["spec"] = "{not json"
    files["bad spec"] = (bad_spec, "malformed stream declaration")
    missing = folder / "missing_dataset.h5"
    shutil.copy(good, missing)
    with h5py.File(missing, "r+") as f:
        del f["streams/glove/hand/t_host_ns"]
    files["missing dataset"] = (missing, "t_host_ns")
    return files


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = write_sim_episode(folder / "good.h5", seed=2, seconds=0.6, width=32, height=24,
                             glove_rate=100.0)
    return folder, good, _bad_files(folder, good)


def test_info_and_validate_name_the_file_and_the_problem(library, capsys):
    _, _, files = library
    for name, (path, words) in files.items():
        for command in ("info", "validate"):
            assert cli_main([command, str(path)]) == 1, (name, command)
            err = capsys.readouterr().err
            assert str(path) in err and words in err and "Traceback" not in err, (name, command, err)


def test_recover_and_curate_refuse_bad_files_clearly(library, capsys):
    _, _, files = library
    for name, (path, words) in files.items():
        before = path.read_bytes()
        assert cli_main(["recover", str(path)]) == 1, name
        out = capsys.readouterr()
        assert "Traceback" not in out.err and str(path) in out.out + out.err, (name, out)
        assert cli_main(["curate", str(path), "--outcome", "failure"]) in (0, 1), name
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if name in ("truncated", "not hdf5"):
            assert path.read_bytes() == before, f"{name}: a damaged file was modified"


def test_library_tools_list_bad_files_with_reasons_and_keep_the_good(library, tmp_path, capsys):
    folder, good, files = library
    by_name = {str(s.path): s for s in EpisodeCatalog(folder, use_cache=False).scan()}
    assert by_name[str(good)].ok
    for name, (path, _) in files.items():
        summary = by_name[str(path)]
        assert not summary.ok and summary.error, name

    assert cli_main(["ls", str(folder), "--no-cache"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "truncated.h5" in out.out + out.err

    dataset = EpisodeDataset([folder])
    assert [e.path for e in dataset.episodes] == [good]
    for name, (path, _) in files.items():
        assert path in dataset.skipped, name

    out_dir = tmp_path / "rm.hdf5"
    assert cli_main(["export", "robomimic", str(folder), "-o", str(out_dir), "-q"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    with h5py.File(out_dir, "r") as f:
        assert len(f["data"]) == 1


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Corrupt like real damage does: flipped bytes, zeroed blocks, or a cut."""
    buf = bytearray(data)
    kind = rng.choice(["flip", "zero", "cut"])
    if kind == "cut":
        return bytes(buf[: rng.randrange(64, len(buf))])
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(buf))
        if kind == "flip":
            buf[at] ^= 1 << rng.randrange(8)
        else:
            buf[at:at + rng.randint(8, 512)] = bytes(min(512, len(buf) - at))[: rng.randint(8, 512)]
    return bytes(buf[: len(data)])


def _read_everything(path) -> None:
    with open_episode(path) as ep:
        ep.summary()
        ep.events()
        for stream, spec in ep.streams.items():
            for fs in spec.fields:
                ep.frames(stream, fs.name)


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_fuzzed_episodes_read_or_fail_with_episode_error(tmp_path, encoding):
    """Random corruption anywhere in the file: reading gives the data or an EpisodeError that
    names the file; validate_episode always returns a list. 60 cases each (more: -m slow)."""
    _fuzz(tmp_path, encoding, cases=60, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_fuzzed_episodes_many_cases(tmp_path, encoding):
    _fuzz(tmp_path, encoding, cases=1000, seed=2)


def _fuzz(tmp_path, encoding, cases, seed):
    good = write_sim_episode(tmp_path / "good.h5", seed=3, seconds=0.3, width=16, height=16,
                             glove_rate=50.0, color_encoding=encoding, command=True)
    data, rng = good.read_bytes(), random.Random(seed)
    outcomes = {"read": 0, "error": 0}
    for case in range(cases):
        path = tmp_path / f"case{case}.h5"
        path.write_bytes(_mutate(data, rng))
        try:
            _read_everything(path)
            outcomes["read"] += 1
        except EpisodeError as exc:
            assert str(path) in str(exc), exc
            outcomes["error"] += 1
        problems = validate_episode(path)
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
        path.unlink()
    assert outcomes["error"] > 0, outcomes
    print(json.dumps(outcomes))
